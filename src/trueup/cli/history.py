"""The run history: `trueup runs` and `trueup rollback RUN`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from trueup.apply import ApplyResult, StopReason
from trueup.cli import render
from trueup.cli.common import (
    ConfigOption,
    JsonOption,
    app,
    confirm,
    err,
    open_store,
    out,
    reap,
    run_apply,
    sync_locked,
)
from trueup.config import load_config
from trueup.destinations import open_destination
from trueup.diff import Action
from trueup.errors import (
    ApiAllowanceExhausted,
    ErrorRateExceeded,
    StoreError,
)
from trueup.rollback import RollbackPlan, plan_rollback
from trueup.store import RunStatus, RunSummary


@app.command()
def runs(
    run_id: Annotated[int | None, typer.Argument(help="Show this run in detail.")] = None,
    config: ConfigOption = Path("trueup.yml"),
    limit: Annotated[int, typer.Option(help="How many runs to list.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List recent runs, or show one run with its outcome counts and failures.

    A run whose process died (killed, crashed) is marked interrupted here, as by the next apply:
    what the destination confirmed before is kept; the next apply plans against it as it is."""
    loaded = load_config(config)
    with open_store(loaded) as store:
        try:
            reap(store)
        except StoreError as exc:  # a read-only store can still be listed
            err.print(f"warning: {exc}", highlight=False, soft_wrap=True)
        if run_id is None:
            listed = store.list_runs(limit)
            if as_json:
                sys.stdout.write(json.dumps([_run_json(r) for r in listed], indent=1) + "\n")
            else:
                render.render_runs(out, listed)
                _explain_interrupted(listed)
            return
        detail = store.get_run(run_id)
    if as_json:
        body = _run_json(detail.summary) | {
            "message": detail.message,
            "guards": detail.guards,
            "error_codes": detail.error_codes,
            "failures": [
                {"key": f.key, "batch": f.batch, "error_code": f.error_code, "message": f.message}
                for f in detail.failures
            ],
        }
        sys.stdout.write(json.dumps(body, indent=1) + "\n")
    else:
        render.render_run(out, detail)


def _explain_interrupted(listed: Sequence[RunSummary]) -> None:
    ids = [str(r.id) for r in listed if r.status is RunStatus.INTERRUPTED]
    if ids:
        which = f"Run {ids[0]} was" if len(ids) == 1 else f"Runs {', '.join(ids)} were"
        out.print(
            f"{which} interrupted: the process ended mid-run (killed, crashed or lost). The "
            "outcomes shown are those the destination confirmed before; 'trueup runs ID' tells "
            "more, and the next apply plans against the destination as it is now.",
            highlight=False,
            soft_wrap=True,
        )


def _run_json(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "command": run.command,
        "status": run.status.value,
        "host": run.host,
        "pid": run.pid,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "destination": run.destination,
        "config_fingerprint": run.config_fingerprint,
        "plan_fingerprint": run.plan_fingerprint,
        "counts": run.counts,
        "reverts_run": run.reverts_run,
    }


@app.command()
def rollback(
    run_id: Annotated[int, typer.Argument(help="The run to roll back (see 'trueup runs').")],
    config: ConfigOption = Path("trueup.yml"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
    save: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Save the reverse plan to this JSON file for review and write nothing "
            "(apply it later with 'trueup apply --plan').",
        ),
    ] = None,
) -> None:
    """Undo a run from its before-images; records changed since are left alone as conflicts.

    Restores the fields the run changed to their before-images, deletes the records it created
    and creates again the records it deleted.

    A record changed again since the run is a conflict: listed (field, what the run wrote, what
    the destination holds now) and left alone. Records the run failed or skipped are not touched.
    The rollback is a run itself, and can be rolled back. See docs/rollback.md.
    """
    if save is not None and yes:
        raise typer.BadParameter(
            "--out saves the reverse plan for review and writes nothing; drop one of them",
            param_hint="'--yes'",
        )
    loaded = load_config(config)
    destination = open_destination(loaded)
    with sync_locked(loaded), destination:
        with open_store(loaded) as store, render.progress_bar(err) as progress:
            reverse = plan_rollback(loaded, run_id, store, destination, progress=progress)
        the_plan = reverse.plan
        if save is not None:
            the_plan.save(save)
        if not as_json:
            render.render_plan(out, the_plan)
            for line in _rollback_notes(reverse):
                out.print(line, highlight=False, soft_wrap=True)
        if save is not None or the_plan.write_count == 0:
            if as_json:
                sys.stdout.write(json.dumps(_rollback_json(reverse, None, None), indent=1) + "\n")
            elif save is not None:
                out.print(
                    f"Saved the reverse plan to {save} (apply it with "
                    f"'trueup apply --plan {save}').",
                    highlight=False,
                    soft_wrap=True,
                )
            return
        confirm(
            f"Roll back run {run_id}: {the_plan.write_count:,} changes?",
            yes=yes,
            refusal="not rolling back without confirmation; pass --yes",
        )
        result, write_path = run_apply(loaded, the_plan, destination, command="rollback")
    if as_json:
        body = _rollback_json(reverse, result, write_path)
        sys.stdout.write(json.dumps(body, indent=1) + "\n")
    else:
        render.render_apply(out, result, the_plan)
        conflicts = the_plan.counts.get(Action.CONFLICT, 0)
        left = f"; {conflicts:,} conflicting records left alone" if conflicts else ""
        out.print(f"Run {result.run_id} rolled back run {run_id}{left}.", highlight=False)
    if result.status is not RunStatus.STOPPED:
        return
    if result.stop_reason is StopReason.API_RESERVE:
        raise ApiAllowanceExhausted(result.message or "stopped at the API reserve")
    raise ErrorRateExceeded(result.message or "stopped by the error-rate brake")


def _rollback_notes(reverse: RollbackPlan) -> list[str]:
    """What a rollback leaves alone besides its conflicts, and earlier rollbacks of the run."""
    lines = []
    if reverse.untouched:
        lines.append(
            f"{reverse.untouched:,} records run {reverse.run.id} failed or skipped are not touched."
        )
    if reverse.earlier_rollbacks:
        runs = ", ".join(str(r) for r in reverse.earlier_rollbacks)
        lines.append(f"Run {reverse.run.id} was rolled back before by run {runs}.")
    return lines


def _rollback_json(
    reverse: RollbackPlan, result: ApplyResult | None, write_path: str | None
) -> dict[str, Any]:
    plan = reverse.plan
    shown = (Action.CREATE, Action.UPDATE, Action.DELETE, Action.UNCHANGED, Action.CONFLICT)
    body: dict[str, Any] = {
        "reverts_run": reverse.run.id,
        "run": result.run_id if result is not None else None,
        "plan": {a.value: plan.counts.get(a, 0) for a in (*shown, Action.INVALID)},
        "conflicts": [c.to_json() for c in reverse.conflicts()],
        "untouched": reverse.untouched,
        "earlier_rollbacks": list(reverse.earlier_rollbacks),
    }
    if result is None:
        return body | {"written": 0}
    return body | {
        "status": result.status.value,
        "write_path": write_path,
        "processed": result.processed,
        "counts": {s.value: n for s, n in result.counts.items()},
        "error_codes": dict(result.error_codes),
        "error_rate": result.error_rate,
        "message": result.message,
        "stop_reason": result.stop_reason.value if result.stop_reason else None,
    }
