"""What every job a worker claims shares: leased rows, the claim, the reaper and retries.

Training jobs and batch predictions are different tables with the same lifecycle;
each domain describes its table in a ``JobKind`` and hands its work to ``run_next_job``.
"""
