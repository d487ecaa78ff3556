"""The daemon's jobs and their APScheduler wiring; installed as creditctl.scheduler."""

if __name__ != "creditctl.scheduler":
    raise ImportError("this package is creditctl.scheduler; import it as creditctl.scheduler")
