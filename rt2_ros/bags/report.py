"""Write an evaluation's report directory: report.json, steps.jsonl and the PNG plots."""
from datetime import datetime, timezone
import json
from pathlib import Path
from typing import Any, Dict, List

from rt2_ros.actions import ActionSpace
from rt2_ros.bags.evaluation import StepResult

REPORT_FILE = 'report.json'
STEPS_FILE = 'steps.jsonl'
PLOT_FILES = {'actions': 'actions.png', 'errors': 'errors.png', 'latency': 'latency.png'}


def write_report(out: Path, report: Dict[str, Any], results: List[StepResult],
                 space: ActionSpace, plots: bool = True) -> Dict[str, str]:
    """Write the files (overwriting an earlier report in out); return their paths by name."""
    from rt2_ros.bags import plots as plotting
    out.mkdir(parents=True, exist_ok=True)
    paths = {'report': str(out / REPORT_FILE), 'steps': str(out / STEPS_FILE)}
    report = dict(report)
    report['created'] = datetime.now(timezone.utc).isoformat(timespec='seconds')
    report['names'] = list(space.names)
    report['plots'] = {}
    if plots and results:
        plotting.plot_actions(results, space, out / PLOT_FILES['actions'])
        plotting.plot_errors(results, space, out / PLOT_FILES['errors'])
        plotting.plot_latency(results, out / PLOT_FILES['latency'])
        report['plots'] = dict(PLOT_FILES)
        paths.update({name: str(out / file) for name, file in PLOT_FILES.items()})
    with (out / STEPS_FILE).open('w', encoding='utf-8') as handle:
        for result in results:
            handle.write(json.dumps(result.to_dict(space.names)) + '\n')
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
    return paths
