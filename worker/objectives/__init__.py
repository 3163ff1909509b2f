"""What a fine-tuning method changes in the one training loop (worker/trainer.py): its examples and their
batches, its loss and metrics on a batch, its validation and its row of step_metrics.csv. Everything
else (the model, the optimizer, checkpoints, pausing and resuming) is the loop's, the same for all.

- objective.py: what the loop asks of an objective (`Objective`) and the batches it makes.
- supervised.py: next-token loss on assistant turns and completions (SFT).
- preference.py: DPO on preference pairs.
- reinforcement.py: GRPO on the model's own answers to prompts, scored by a grader.
"""

from worker.objectives.objective import Objective
from worker.objectives.preference import PreferenceObjective
from worker.objectives.reinforcement import ReinforcementObjective
from worker.objectives.supervised import SupervisedObjective
from worker.training_run import TrainingRun


def objective_for(run: TrainingRun) -> Objective:
    if run.method == "dpo":
        return PreferenceObjective()
    if run.method == "reinforcement":
        return ReinforcementObjective(run.settings.samples_per_prompt)
    return SupervisedObjective()
