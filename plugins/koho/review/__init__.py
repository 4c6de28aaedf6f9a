"""Account-usefulness review: figures per period, KEEP/IMPROVE/RETIRE verdicts, what worked.

Pure logic over plain dataclasses (:mod:`koho.review.model`); the review DAG builds the input
from the ledger and asks a person to decide: a verdict never changes anything by itself.
"""
