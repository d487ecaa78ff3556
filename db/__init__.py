"""Tables, engines and migrations for creditctl."""
