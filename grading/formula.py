"""A multi grader's `calculate_output`: arithmetic over its graders' rewards, by name.

Evaluated by simpleeval (a parsed expression walked node by node, with no attribute access, calls only
to the functions below and bounded powers), never by `eval`. OpenAI's formulas write powers with `^`,
which is read as Python's `**` (with its precedence).
"""

import ast
import math
import operator

from simpleeval import DEFAULT_OPERATORS, InvalidExpression, NameNotDefined, SimpleEval, safe_power

from grading.errors import GradingFailure

FUNCTIONS = {"min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil, "exp": math.exp,
             "sqrt": math.sqrt, "log": math.log}
OPERATORS = {**DEFAULT_OPERATORS, ast.Pow: safe_power, ast.USub: operator.neg}


def _python_syntax(formula: str) -> str:
    return formula.strip().replace("^", "**")


def formula_problem(formula: str, names: set[str]) -> str | None:
    """Why the formula cannot be computed from rewards of these names (for validate), or None."""
    try:
        tree = ast.parse(_python_syntax(formula), mode="eval")
    except SyntaxError as exc:
        return f"calculate_output is not a formula: {exc.msg}"
    unknown = sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} - names - set(FUNCTIONS))
    if unknown:
        return (f"calculate_output names {', '.join(unknown)}, which is not one of the graders "
                f"({', '.join(sorted(names))}) or functions ({', '.join(FUNCTIONS)})")
    return None


def calculate(formula: str, rewards: dict[str, float]) -> float:
    evaluator = SimpleEval(operators=dict(OPERATORS), functions=dict(FUNCTIONS), names=dict(rewards))
    try:
        value = evaluator.eval(_python_syntax(formula))
    except SyntaxError as exc:
        raise GradingFailure("formula_parse_error", f"calculate_output is not a formula: {exc.msg}") from None
    except NameNotDefined as exc:
        raise GradingFailure("invalid_variable_error", str(exc)) from None
    except (InvalidExpression, ArithmeticError, ValueError, TypeError) as exc:
        raise GradingFailure("formula_parse_error", f"calculate_output could not be computed: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GradingFailure("formula_parse_error", f"calculate_output gave {value!r}, not a finite number")
    return float(value)
