"""Residents' voice: routing to departments, marks, personal-data masking, comment-storm alerts.

Pure logic over texts and counts; the DAGs that collect comments and send digests only wire it.
Koho never replies to residents by itself (policy: opinions are shared with the staff concerned,
not necessarily answered), so nothing here writes to a platform.
"""
