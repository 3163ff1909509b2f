"""Fine-tuning jobs, from create to their last file.

- admission.py: every check a create request passes; the job, its first events, its queue entry.
- transitions.py: each change of status (claim, complete, fail, pause, resume, cancel, requeue) as a
  guarded update, the state diagram, and what workers report.
- job_spec.py: what a worker receives when it claims a job.
- results.py: checkpoints and result files: scratch uploads, their adoption as files, pruning, and
  the start-up sweep.
"""
