"""What a fine-tuning method changes in the one training loop (worker/trainer.py): its examples and their
batches, its loss and metrics on a batch, its validation and its row of step_metrics.csv. Everything
else (the model, the optimizer, checkpoints, pausing and resuming) is the loop's, the same for all.

- objective.py: what the loop asks of an objective (`Objective`) and the batches it makes.
- supervised.py: next-token loss on assistant turns and completions (SFT).
- preference.py: DPO on preference pairs.
"""

from contract.literals import Method
from worker.objectives.objective import Objective
from worker.objectives.preference import PreferenceObjective
from worker.objectives.supervised import SupervisedObjective


def objective_for(method: Method) -> Objective:
    return PreferenceObjective() if method == "dpo" else SupervisedObjective()
