"""The rules fallback answers for any task when the model cannot, and refuses anything
but its small safe language."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from driftloop.core.config import FallbackPolicy, load_settings
from driftloop.core.errors import ConfigError, DataValidationError, InvalidParameterError
from driftloop.core.expression import Expression
from driftloop.registry import LoadedModel
from driftloop.registry._onnx import Runtime
from driftloop.registry._signature import FeatureSpec, Signature
from driftloop.serving._rules import RulesModel

NAN = float("nan")
FRAUD = "0.9 if amount > 2000 or tx_count_1h > 5 else 0.05"


def rules(
    rules: str | None = None,
    default: Any = None,
    *,
    task: str = "binary",
    features: tuple[str, ...] = ("amount", "tx_count_1h"),
    classes: tuple[str, ...] = (),
    **kwargs: Any,
) -> RulesModel:
    return RulesModel.of(
        FallbackPolicy(rules=rules, default=default),
        model_name="fraud",
        task=task,
        feature_names=features,
        classes=classes,
        **kwargs,
    )


def test_fraud_rules_flag_big_amounts_and_bursts_of_transactions() -> None:
    matrix = np.array([[2500.0, 0.0], [10.0, 9.0], [10.0, 1.0], [2000.0, 5.0]])
    out = rules(FRAUD, 0.05).predict(matrix)
    assert out.shape == (4,)
    assert out.dtype == np.float64
    assert out.tolist() == [0.9, 0.9, 0.05, 0.05]


def test_binary_takes_a_bool_as_one_or_zero() -> None:
    out = rules("amount > 100").predict(np.array([[150.0, 0.0], [50.0, 0.0]]))
    assert out.tolist() == [1.0, 0.0]


def test_regression_answers_the_value_of_the_expression() -> None:
    model = rules("min(amount * 0.1, 50) + abs(tx_count_1h - 3) // 2", task="regression")
    out = model.predict(np.array([[100.0, 0.0], [10_000.0, 8.0]]))
    assert out.shape == (2,)
    assert out.tolist() == [11.0, 52.0]


def test_multiclass_answers_a_one_hot_row_of_the_named_class() -> None:
    model = rules(
        "'high' if amount > 1000 else 'mid' if amount > 100 else 'low'",
        task="multiclass",
        classes=("high", "low", "mid"),
    )
    out = model.predict(np.array([[5000.0, 0.0], [500.0, 0.0], [5.0, 0.0]]))
    assert out.shape == (3, 3)
    assert out.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert (out.sum(axis=1) == 1.0).all()


def test_multiclass_numbered_classes_can_be_answered_with_numbers() -> None:
    model = rules("2 if amount > 10 else 0", task="multiclass", classes=("0", "1", "2"))
    assert model.predict(np.array([[50.0, 0.0]])).tolist() == [[0.0, 0.0, 1.0]]


def test_only_a_default_answers_every_row_for_each_task() -> None:
    matrix = np.zeros((3, 2))
    assert rules(default=0.05).predict(matrix).tolist() == [0.05] * 3
    assert rules(default=True).predict(matrix).tolist() == [1.0] * 3
    assert rules(default=12.5, task="regression").predict(matrix).tolist() == [12.5] * 3
    multi = rules(default="b", task="multiclass", classes=("a", "b"))
    assert multi.predict(matrix).tolist() == [[0.0, 1.0]] * 3


def test_constant_is_the_declared_safe_default_alone() -> None:
    model = RulesModel.constant(0.0, model_name="fraud", task="binary", feature_names=["a"])
    assert model.predict(np.ones((2, 1))).tolist() == [0.0, 0.0]
    assert model.expression is None


def test_categories_compare_by_text_from_raw_rows() -> None:
    model = rules("0.8 if country in ('RU', 'NG') else 0.1", features=("amount", "country"))
    matrix = np.array([[1.0, 1.0], [1.0, 0.0], [1.0, NAN]])  # codes: meaningless here
    raw = [[1.0, "NG"], [1.0, "FR"], [1.0, None]]
    assert model.predict(matrix, raw).tolist() == [0.8, 0.1, 0.1]


def test_categories_compare_by_text_decoded_from_the_matrix() -> None:
    model = rules(
        "0.8 if country == 'NG' else 0.1",
        features=("amount", "country"),
        categories={"country": ("FR", "NG", "RU")},
    )
    matrix = np.array([[1.0, 1.0], [1.0, 0.0], [1.0, NAN], [1.0, 7.0]])
    assert model.predict(matrix).tolist() == [0.8, 0.1, 0.1, 0.1]


def test_booleans_decode_from_the_matrix_and_raw_rows_alike() -> None:
    model = rules(
        "0.7 if online and amount > 10 else 0.2",
        features=("amount", "online"),
        booleans=["online"],
    )
    matrix = np.array([[50.0, 1.0], [50.0, 0.0]])
    assert model.predict(matrix).tolist() == [0.7, 0.2]
    assert model.predict(matrix, [[50, True], [50, False]]).tolist() == [0.7, 0.2]


def test_a_missing_value_compares_false_and_isnull_sees_it() -> None:
    model = rules(
        "0.5 if isnull(amount) else 0.9 if amount != 3 and coalesce(tx_count_1h, 0) > 1 else 0.1"
    )
    matrix = np.array([[NAN, 9.0], [10.0, NAN], [10.0, 4.0], [3.0, 4.0]])
    assert model.predict(matrix).tolist() == [0.5, 0.1, 0.9, 0.1]
    # a missing value is false with != too, not only with == and <
    assert rules("amount != 3", 0.3).predict(np.array([[NAN, 0.0]])).tolist() == [0.0]


def test_a_missing_value_as_a_condition_gets_the_default() -> None:
    model = rules("0.9 if amount else 0.1", default=0.4)
    assert model.predict(np.array([[NAN, 0.0], [5.0, 0.0]])).tolist() == [0.4, 0.9]


@pytest.mark.parametrize(
    ("expression", "row"),
    [
        ("amount / tx_count_1h", [1.0, 0.0]),  # division by zero
        ("amount * 2", [1.0, 0.0]),  # a probability outside [0, 1]
        ("amount - amount", [NAN, 0.0]),  # NaN
        ("'yes'", [1.0, 0.0]),  # text where a probability is due
        ("10.0 ** 400", [1.0, 0.0]),  # overflow, not a huge number
    ],
)
def test_a_row_whose_rules_fail_or_give_no_answer_gets_the_default(
    expression: str, row: list[float]
) -> None:
    out = rules(expression, 0.05).predict(np.array([row, [0.5, 1.0]]))
    assert out[0] == 0.05


def test_an_unknown_class_gets_the_default() -> None:
    model = rules("'medium'", "low", task="multiclass", classes=("high", "low"))
    assert model.predict(np.zeros((1, 2))).tolist() == [[0.0, 1.0]]


def test_without_a_default_a_failing_row_is_an_error_naming_model_and_problem() -> None:
    model = rules("amount / tx_count_1h")
    assert model.predict(np.array([[1.0, 4.0]])).tolist() == [0.25]
    with pytest.raises(DataValidationError, match=r"ZeroDivisionError") as err:
        model.predict(np.array([[1.0, 4.0], [1.0, 0.0]]))
    assert "Model 'fraud'" in str(err.value)
    assert "row 1" in str(err.value)
    assert "models.fraud.fallback has no default" in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ("__import__('os')", "a call of '__import__'"),
        ("().__class__", "attribute access"),
        ("open('x')", "a call of 'open'"),
        ("amount.real", "attribute access"),
        ("(lambda: 1)()", "a call of 'lambda: 1'"),
        ("lambda: 1", "a lambda"),
        ("[a for a in (1, 2)]", "a comprehension"),
        ("amount[0]", "indexing"),
        ("__builtins__", "the name '__builtins__'"),
        ("amount is None", "the comparison Is"),
        ("amount in tx_count_1h", "in / not in other than a list of constants"),
        ("f'{amount}'", "an f-string"),
        ("min", "'min' as a value"),
        ("max(amount)", "max with 1 argument(s)"),
        ("abs(x=amount)", "keyword or * arguments to abs"),
    ],
)
def test_unsafe_expressions_are_refused_naming_what_and_the_features(
    expression: str, named: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(named)):
        FallbackPolicy(rules=expression)
    unchecked = FallbackPolicy.model_construct(rules=expression, default=None)
    with pytest.raises(ConfigError) as err:  # the rules model checks again, with the features
        RulesModel.of(
            unchecked, model_name="fraud", task="binary", feature_names=["amount", "tx_count_1h"]
        )
    message = str(err.value)
    assert message.startswith("models.fraud.fallback.rules: ")
    assert named in message
    assert "Features: amount, tx_count_1h" in message


def test_an_unknown_feature_is_refused_with_the_key_and_the_features() -> None:
    with pytest.raises(ConfigError) as err:
        rules("0.9 if amout > 2000 else 0.1")
    assert str(err.value) == (
        "models.fraud.fallback.rules: 'amout' is not a feature of the model. "
        "Features: amount, tx_count_1h."
    )


def test_a_default_that_is_no_answer_for_the_task_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"models\.fraud\.fallback\.default: .*\[0, 1\]"):
        rules(default=1.5)
    with pytest.raises(ConfigError, match=r"fallback\.default: 'c' is not a class"):
        rules(default="c", task="multiclass", classes=("a", "b"))
    with pytest.raises(ConfigError, match=r"fallback\.default: .*must be a number"):
        rules(default=True, task="regression")


def test_for_model_reads_names_kinds_classes_from_the_signature() -> None:
    signature = Signature(
        (
            FeatureSpec("amount"),
            FeatureSpec("online", kind="boolean"),
            FeatureSpec("country", kind="category", categories=("FR", "NG")),
        ),
        task="binary",
        classes=("no", "yes"),
    )
    loaded = LoadedModel(
        flavor="test",
        signature=signature,
        runtime=Runtime("test", lambda m: np.zeros(len(m)), None, "test"),
        name="fraud",
    )
    policy = FallbackPolicy(rules="0.9 if country == 'NG' and online else 0.1", default=0.1)
    model = RulesModel.for_model(policy, loaded)
    assert model.predict(np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])).tolist() == [0.9, 0.1]


def test_the_expression_is_compiled_once_and_evaluated_without_builtins() -> None:
    expression = Expression.parse("amount + 1", names=["amount"])
    assert expression.evaluate({"amount": 1.0}) == 2.0
    assert expression.names == ("amount",)
    # integers are floats: no expression can build a huge integer
    assert Expression.parse("9 ** 9").evaluate({}) == float(9**9)
    with pytest.raises(OverflowError):
        Expression.parse("9 ** 9 ** 9").evaluate({})


def test_syntax_errors_say_so() -> None:
    with pytest.raises(InvalidParameterError, match="not valid"):
        Expression.parse("amount >")


def test_settings_load_a_fallback_section(tmp_path: Path) -> None:
    path = tmp_path / "driftloop.toml"
    path.write_text(
        f'[models.fraud]\ntask = "binary"\n\n[models.fraud.fallback]\nrules = "{FRAUD}"\n'
        "default = 0.05\n"
    )
    fallback = load_settings(config_file=path).model("fraud").fallback
    assert fallback == FallbackPolicy(rules=FRAUD, default=0.05)


@pytest.mark.parametrize(
    ("rules_line", "problem"),
    [
        ("amount.__class__", "attribute access is not allowed: `amount.__class__`"),
        ("__import__('os').system('x')", "is not allowed"),
        ("0.9 if amount > else 0.1", "the expression is not valid"),
    ],
)
def test_settings_refuse_a_bad_rules_expression_naming_the_key(
    tmp_path: Path, rules_line: str, problem: str
) -> None:
    path = tmp_path / "driftloop.toml"
    path.write_text(f'[models.x.fallback]\nrules = "{rules_line}"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(config_file=path)
    assert str(err.value).startswith(f"models.x.fallback.rules (from file {path}): ")
    assert problem in str(err.value)


def test_settings_refuse_an_empty_fallback_and_a_wrong_default(tmp_path: Path) -> None:
    path = tmp_path / "driftloop.toml"
    path.write_text("[models.x.fallback]\n")
    with pytest.raises(ConfigError, match=r"models\.x\.fallback .*give rules, a default"):
        load_settings(config_file=path)
    path.write_text('[models.x]\ntask = "regression"\n[models.x.fallback]\ndefault = "low"\n')
    with pytest.raises(ConfigError, match=r"fallback\.default: a number is needed"):
        load_settings(config_file=path)
