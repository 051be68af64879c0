from __future__ import annotations

import json
import math
import statistics

import pytest
from _eval_models import report_of

from torch_absld import RobustnessReport, class_accuracy_summary, reports_to_markdown


def test_report_tables_and_round_trip() -> None:
    report = report_of({"clean": ([9, 6], [10, 10]), "pgd": ([5, 2], [10, 10])})
    markdown = report.to_markdown(name="ABSLD", per_class=True, class_names=["cat", "dog"])
    assert "| Method | Clean Avg. | Clean Worst | Clean Overall | PGD Avg. | PGD Worst | PGD Overall |" in markdown
    assert "| ABSLD | 75.00 | 60.00 | 67.50 | 35.00 | 20.00 | 27.50 |" in markdown
    assert "| cat | 90.00 | 50.00 |" in markdown
    assert "| dog | 60.00 | 20.00 |" in markdown
    text = str(report)
    assert "eps = 8/255" in text
    assert "Worst = the lowest class" in text
    assert text.splitlines()[2].split() == ["Clean", "75.00", "60.00", "67.50"]
    data = json.loads(report.to_json())
    assert data["results"]["pgd"]["per_class"] == [0.5, 0.2]
    again = RobustnessReport.from_dict(data)
    assert again.to_dict() == report.to_dict()
    assert list(report) == ["clean", "pgd"]
    assert len(report) == 2
    with pytest.raises(KeyError, match="No attack 'cw' in this report"):
        report["cw"]


def test_reports_to_markdown_one_row_per_method() -> None:
    rslad = report_of({"clean": ([8, 7], [10, 10]), "pgd": ([6, 2], [10, 10])})
    absld = report_of({"clean": ([8, 8], [10, 10])})
    table = reports_to_markdown({"RSLAD": rslad, "ABSLD": absld}).splitlines()
    assert table[2] == "| RSLAD | 75.00 | 70.00 | 72.50 | 40.00 | 20.00 | 30.00 |"
    assert table[3] == "| ABSLD | 80.00 | 80.00 | 80.00 | - | - | - |"


def test_report_worst_k_text_for_many_classes() -> None:
    report = report_of({"clean": ([1] * 100, [2] * 100)})
    assert report.worst_k == 10
    assert "mean of the 10 lowest classes" in str(report)


def test_nsd_hand_computed() -> None:
    # Accuracies 1/2, 1, 1/5: mean 17/30, deviations -2/30, 13/30, -11/30, population variance
    # (4 + 169 + 121) / 900 / 3 = 49/450, so NSD = (7 / (15 sqrt 2)) / (17 / 30) = 7 sqrt(2) / 17.
    result = class_accuracy_summary([5, 10, 2], [10, 10, 10])
    assert result.nsd == pytest.approx(7 * math.sqrt(2) / 17, rel=1e-12)
    assert result.nsd == pytest.approx(statistics.pstdev(result.per_class) / statistics.fmean(result.per_class))
    # A class-weighted mean, not the sample-weighted Avg.: 3/4 and 1/2 on 4 and 2 samples.
    unbalanced = class_accuracy_summary([3, 1], [4, 2])
    assert unbalanced.nsd == pytest.approx(0.125 / 0.625, rel=1e-12)
    assert class_accuracy_summary([3, 3], [4, 4]).nsd == 0.0
    assert class_accuracy_summary([0, 0, 0], [5, 1, 2]).nsd == 0.0  # all equal (and the mean is 0)


def test_nsd_in_markdown_and_json() -> None:
    rslad = report_of({"clean": ([9, 6], [10, 10]), "pgd": ([5, 2], [10, 10])})
    absld = report_of({"clean": ([8, 8], [10, 10])})
    lines = reports_to_markdown({"RSLAD": rslad, "ABSLD": absld}).splitlines()
    assert lines[4] == ""
    assert lines[5] == "| Method | Clean NSD | PGD NSD |"
    # clean: (0.9, 0.6) -> 0.15 / 0.75 = 0.2; pgd: (0.5, 0.2) -> 0.15 / 0.35 = 0.428571...
    assert lines[7] == "| RSLAD | 0.2000 | 0.4286 |"
    assert lines[8] == "| ABSLD | 0.0000 | - |"
    assert "| Model | 0.2000 | 0.4286 |" in rslad.to_markdown()
    data = json.loads(rslad.to_json())
    assert data["results"]["pgd"]["nsd"] == pytest.approx(0.15 / 0.35)
    assert RobustnessReport.from_dict(data).to_dict() == data
