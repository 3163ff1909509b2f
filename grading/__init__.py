"""OpenAI's graders, computed: what a sample of a model's output is worth, from 0 (or a score model's low
end) up. The server runs them for `/v1/fine_tuning/alpha/graders/run`, the worker on each sample of a
reinforcement job; both call `grade` in run.py, so a grader tried through the API scores as it trains.

- templates.py: `{{item.*}}` and `{{sample.*}}` filled in from the item and the sample.
- text_metrics.py: string_check's operations and text_similarity's metrics (rapidfuzz, NLTK, rouge-score).
- python_sandbox.py: the user's `grade(sample, item)` in a child process with OpenAI's limits
  (python_child.py is that child's own code).
- model_graders.py: score_model and label_model, through a model the caller serves (`ChatModel`).
- formula.py: a multi grader's `calculate_output`, evaluated by simpleeval, never by `eval`.
- run.py: one grader on one sample, with OpenAI's error flags; checks.py: what validate refuses.

It imports the contract and its libraries only: neither the server nor the worker.
"""
