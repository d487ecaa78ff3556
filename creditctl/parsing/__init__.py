"""Parsing of what users type, one idea a module.

`text`: free text (control characters refused, names, reasons, references, quoting in
errors); `numbers`: credit amounts, deltas and row ids; `times`: durations and dates;
`identity`: emails, user ids, the user named on a command line, search text.
"""
