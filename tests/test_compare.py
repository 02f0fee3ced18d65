"""Comparing two checkpoints' answers on the same images (vitrm.compare_predictions).

Each table here is written by hand, so every count, accuracy and cell below is known in advance.
The app's "Compare with…" section is driven in test_app_compare.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import vitrm
from vitrm import ComparisonError, compare_predictions

NAMES = ("cat", "dog", "ship")


def table(rows: list[tuple[int, list[int]]], order=None) -> pd.DataFrame:
    """A per-image table as vitrm evaluate writes it: rows of (label, answer at each step)."""
    out = []
    for i, (label, preds) in enumerate(rows):
        row = {"index": i, "path": f"test/{NAMES[label]}/{i:04d}.jpg", "label": label, "label_name": NAMES[label]}
        for s, p in enumerate(preds, start=1):
            row |= {f"pred_{s}": p, f"conf_{s}": 0.5 + 0.1 * s}
        out.append(row)
    frame = pd.DataFrame(out)
    return frame.iloc[order].reset_index(drop=True) if order is not None else frame


# Labels: cat, cat, dog, dog, ship, ship.  A is read at step 2, B at step 1.
A = table([(0, [1, 0]),     # 0: A right (at step 2; step 1 is read in one test only)
           (0, [0, 1]),     # 1: A wrong (dog)
           (1, [1, 1]),     # 2: A right
           (1, [0, 2]),     # 3: A wrong (ship)
           (2, [2, 2]),     # 4: A right
           (2, [2, 0])])    # 5: A wrong (cat)
B = table([(0, [1]),        # 0: B wrong (dog)    -> A right, B wrong
           (0, [0]),        # 1: B right          -> B right, A wrong
           (1, [1]),        # 2: B right          -> both right
           (1, [0]),        # 3: B wrong (cat)    -> both wrong, different answers (A ship, B cat)
           (2, [2]),        # 4: B right          -> both right
           (2, [0])])       # 5: B wrong (cat)    -> both wrong, same answer


def compared(a=A, b=B, **kw):
    return compare_predictions(a, b, **({"classes_a": NAMES, "classes_b": NAMES, "step_a": 2, "step_b": 1} | kw))


def test_each_image_is_put_in_exactly_one_kind_of_agreement():
    result = compared()
    assert list(result.images["kind"]) == ["a_right_b_wrong", "b_right_a_wrong", "both_right",
                                           "both_wrong_differently", "both_right", "both_wrong_same"]
    assert result.counts == {"a_right_b_wrong": 1, "b_right_a_wrong": 1, "both_wrong_differently": 1,
                             "both_right": 2, "both_wrong_same": 1}
    assert list(result.a_right_b_wrong["index"]) == [0]
    assert list(result.b_right_a_wrong["index"]) == [1]
    assert list(result.both_wrong_differently["index"]) == [3]
    assert list(result.disagreements["index"]) == [0, 1, 3]
    assert result.top1 == pytest.approx((3 / 6, 3 / 6))


def test_the_rows_name_each_models_answer_and_its_confidence_at_its_own_step():
    row = compared().images.set_index("index").loc[3]
    assert (row["label_name"], row["answer_a"], row["answer_b"]) == ("dog", "ship", "cat")
    assert row["conf_a"] == pytest.approx(0.7) and row["conf_b"] == pytest.approx(0.6)
    assert row["path"] == "test/dog/0003.jpg"


def test_per_class_accuracy_of_each_model_and_b_minus_a():
    per_class = compared().per_class
    assert list(per_class.index) == list(NAMES)
    assert list(per_class["images"]) == [2, 2, 2]
    assert list(per_class["top1_a"]) == [0.5, 0.5, 0.5]
    assert list(per_class["top1_b"]) == [0.5, 0.5, 0.5]
    assert list(per_class["difference"]) == [0.0, 0.0, 0.0]
    # Read A at step 1 instead (answers dog, cat, dog, cat, ship, ship): cat 1/2, dog 1/2, ship 2/2.
    per_class = compared(step_a=1).per_class
    assert list(per_class["top1_a"]) == [0.5, 0.5, 1.0]
    assert list(per_class["difference"]) == [0.0, 0.0, -0.5]


def test_the_confusion_difference_is_b_minus_a_rows_true_columns_answer():
    result = compared()
    assert result.confusion_a.tolist() == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert result.confusion_b.tolist() == [[1, 1, 0], [1, 1, 0], [1, 0, 1]]
    assert result.confusion_difference.tolist() == [[0, 0, 0], [1, 0, -1], [0, 0, 0]]
    assert result.confusion_difference.sum() == 0, "both matrices count the same images"


def test_a_class_without_images_has_no_accuracy_rather_than_zero():
    no_ship = [(0, [0, 0]), (1, [1, 1])]
    result = compared(table(no_ship), table([(0, [1]), (1, [1])]))
    assert result.per_class.loc["ship", "images"] == 0
    assert np.isnan(result.per_class.loc["ship", "top1_a"]) and np.isnan(result.per_class.loc["ship", "difference"])
    assert result.per_class.loc["cat", "difference"] == -1.0


def test_the_tables_are_joined_on_the_image_index_not_on_their_row_order():
    shuffled = table([(0, [1]), (0, [0]), (1, [1]), (1, [0]), (2, [2]), (2, [0])], order=[5, 3, 1, 0, 4, 2])
    assert compared(b=shuffled).counts == compared().counts
    assert list(compared(b=shuffled).images["index"]) == [0, 1, 2, 3, 4, 5]


def test_identical_answers_have_no_disagreements_and_a_zero_difference():
    result = compared(b=A, step_b=2)
    assert result.disagreements.empty
    assert not result.confusion_difference.any()
    assert (result.per_class["difference"] == 0).all()


@pytest.mark.parametrize("b, message", [
    (B.iloc[:4], "do not cover the same images: A has 6, B 4, 4 in common; only in A: 4, 5"),
    (B.assign(index=B["index"] + 10), "only in B: 10, 11, 12 and 3 more"),
    (B.assign(label=[0, 0, 1, 1, 2, 1], label_name="x"), "image 5 has true class ship in A but dog in B"),
    (B.assign(path=B["path"].str.replace("0002", "9999")), "image 2 is test/dog/0002.jpg in A but "
                                                           "test/dog/9999.jpg in B"),
    (pd.concat([B, B.iloc[:1]]), "image index 0 appears twice"),
    (B.assign(pred_1=[0, 1, 2, 3, 0, 0]), "B: pred_1 of image 3 is 3, not a class index 0..2"),
    (B.iloc[:0], "B: the table holds no images"),
    (B.drop(columns="index"), "B: the table has no index column"),
])
def test_tables_over_different_images_are_refused_with_what_differs(b, message):
    with pytest.raises(ComparisonError, match="^.*" + message.replace("(", r"\(").replace(".", r"\.")):
        compared(b=b)


def test_a_step_outside_the_table_is_refused():
    with pytest.raises(ComparisonError, match=r"B: step 2 is not in the table, which holds steps 1\.\.1"):
        compared(step_b=2)
    with pytest.raises(ComparisonError, match=r"A: step 0"):
        compared(step_a=0)


def test_models_over_different_classes_or_class_orders_are_refused():
    with pytest.raises(ComparisonError, match="different classes"):
        compared(classes_b=("cat", "dog", "plane"))
    with pytest.raises(ComparisonError, match="different order"):
        compared(classes_b=("dog", "cat", "ship"))


def test_a_comparison_error_is_a_user_error_and_the_function_is_public():
    assert issubclass(ComparisonError, vitrm.UserError)
    assert {"compare_predictions", "Comparison", "ComparisonError", "DISAGREEMENTS"} <= set(vitrm.__all__)
    assert set(vitrm.DISAGREEMENTS) < set(vitrm.COMPARISON_KINDS)
