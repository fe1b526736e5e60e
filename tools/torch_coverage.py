"""How much of PyTorch's own module and optimizer test inputs fastnn passes.

    python tools/torch_coverage.py [--json PATH]

Runs tests/test_module_db.py and tests/test_optim_db.py (they need torch and
expecttest) and counts, per suite: the classes of torch's module_db / optim_db,
how many fastnn has, and for those the input cases that pass, are skipped as
unsupported options (with the reasons, grouped) and fail. Prints Markdown.
"""
import argparse
import collections
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUITES = {"module_db": ("tests/test_module_db.py", "module_db", "module_cls"),
          "optim_db": ("tests/test_optim_db.py", "optim_db", "optim_cls")}


def database_classes(suite: str):
    """(names of the classes in torch's database, those fastnn has)."""
    import fastnn
    if suite == "module_db":
        from torch.testing._internal.common_modules import module_db as db
        ours = fastnn.nn
    else:
        from torch.testing._internal.common_optimizers import optim_db as db
        ours = fastnn.optim
    attr = SUITES[suite][2]
    names = sorted({getattr(info, attr).__name__ for info in db})
    return names, [n for n in names if hasattr(ours, n)]


def run(suite: str) -> dict:
    path = SUITES[suite][0]
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "report.xml")
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"--junitxml={xml}", path], cwd=ROOT, capture_output=True, text=True)
        tree = ET.parse(xml)
    per_class = collections.defaultdict(collections.Counter)
    reasons = collections.Counter()
    for case in tree.iter("testcase"):
        name = case.get("name")
        cls = name[name.index("[") + 1:].split("-")[0] if "[" in name else name
        if case.find("skipped") is not None:
            outcome = "skipped"
            reasons[case.find("skipped").get("message", "")[:160]] += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        else:
            outcome = "passed"
        per_class[cls][outcome] += 1
    names, present = database_classes(suite)
    total = collections.Counter()
    for counts in per_class.values():
        total.update(counts)
    return {"classes": len(names), "present": present, "missing": sorted(set(names) - set(present)),
            "cases": dict(total), "per_class": {k: dict(v) for k, v in sorted(per_class.items())},
            "skip_reasons": reasons.most_common(15)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = {suite: run(suite) for suite in SUITES}
    for suite, r in results.items():
        c = r["cases"]
        n = sum(c.values())
        print(f"## {suite}\n")
        print(f"- classes: {len(r['present'])} of {r['classes']} in torch's {suite}")
        print(f"- cases for the classes fastnn has: {c.get('passed', 0)} pass of {n} "
              f"({c.get('skipped', 0)} skipped as unsupported, {c.get('failed', 0)} fail)")
        print(f"- missing classes: {', '.join(r['missing'])}\n")
        print("| class | pass | skipped | fail |\n|---|---|---|---|")
        for cls, counts in r["per_class"].items():
            print(f"| {cls} | {counts.get('passed', 0)} | {counts.get('skipped', 0)} | "
                  f"{counts.get('failed', 0)} |")
        print("\nmost common skip reasons:\n")
        for reason, count in r["skip_reasons"]:
            print(f"- {count} x {reason}")
        print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
