"""The lineage section: keyclass's version and git commit, the pipeline run from ML
Metadata (its steps, their states, artifacts and parameters), the model, and the
command's recorded invocation (config and overrides).
"""

from __future__ import annotations

import time

from keyclass.components.version import keyclass_version
from keyclass.pipeline.report.gather.model import Lineage, ModelInfo, NodeRow
from keyclass.pipeline.report.gather.readers import flatten, git_commit


def gather_lineage(
    command: str,
    run=None,
    model: ModelInfo | None = None,
    invocation: dict | None = None,
) -> Lineage:
    """Who made this, from what: versions, the run and its artifacts, the model, config."""
    inv = invocation or {}
    lin = Lineage(
        keyclass_version=keyclass_version(),
        git_commit=git_commit(),
        command=command,
        generated_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        model=model,
        overrides=dict(inv.get("overrides") or {}),
        config=flatten(inv.get("config") or {}),
        server=str(inv.get("server") or ""),
        prediction_path=str(inv.get("prediction_path") or ""),
        error=str(inv.get("error") or ""),
    )
    if run is not None:
        lin.pipeline_name, lin.run_id, lin.run_seconds = run.pipeline_name, run.run_id, run.seconds
        failed = [n.node_id for n in run.nodes.values() if n.state == "FAILED"]
        unfinished = [n.node_id for n in run.nodes.values() if n.state in ("RUNNING", "NEW", "UNKNOWN")]
        if failed:
            lin.run_state = f"failed at {', '.join(failed)}"
        elif unfinished:
            lin.run_state = f"unfinished: {', '.join(unfinished)}"
        else:
            cached = sum(n.state == "CACHED" for n in run.nodes.values())
            lin.run_state = "complete" + (
                f" ({cached} of {len(run.nodes)} steps reused from the cache)" if cached else ""
            )
        for n in run.nodes.values():
            arts = [(k, a.uri) for k, v in n.outputs.items() for a in v]
            lin.nodes.append(NodeRow(n.node_id, n.state, max(0.0, (n.ended_ms - n.started_ms) / 1000), arts))
            if n.parameters:
                lin.parameters[n.node_id] = dict(n.parameters)
    if run is not None and command in ("predict", "run") and model is not None and model.source == "pushed model":
        lin.notes.append("The pipeline run shown is the one that trained and pushed the model these predictions used.")
    if lin.server:
        lin.notes.append(
            f"Predictions came from the TF Serving endpoint {lin.server}: there is no pipeline lineage "
            "for a served model, only the name and version the server answered with."
        )
    elif run is None:
        lin.notes.append("No pipeline run was found for this report: it covers the files named below only.")
    return lin
