"""Click commands only: parse options, call one core function, render, exit.

Exit codes: 0 ok, 1 findings failed, 2 bad input/usage, 3 host unreachable, 4 run failed,
130 interrupted.
"""
