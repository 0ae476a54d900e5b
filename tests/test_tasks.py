"""Tasks are registered in one place (issue 21, item 6): ``TASKS`` by name, the app runs and the
precheck checks whatever is registered, another package adds one through an entry point."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from enas_lightning import precheck, rundir, tasks
from enas_lightning.app import run
from enas_lightning.errors import ConfigError
from enas_lightning.tasks import TASKS, get_task
from tests.conftest import compose_cfg

PACKAGE = Path(__file__).resolve().parents[1] / "enas_lightning"


@pytest.fixture(autouse=True)
def _clear(monkeypatch):
    monkeypatch.setattr(rundir, "_current", None)
    yield
    GlobalHydra.instance().clear()


def test_the_built_in_tasks_are_registered_by_name() -> None:
    assert list(TASKS) == ["search", "final", "pipeline", "inspect", "fidelity", "latency_table"]
    assert get_task("inspect").resumes is False and get_task("search").resumes is True
    with pytest.raises(ConfigError) as e:
        get_task("serach")
    assert str(e.value) == (
        "task='serach' is not allowed: one of search, final, pipeline, inspect, fidelity, "
        "latency_table"
    )


def test_a_task_of_another_package_is_checked_and_run(monkeypatch, tmp_path) -> None:
    """The plug-in's module registers its task on import; the precheck runs its check, the app
    its run, and ``resumes=False`` keeps a rerun out of its directory."""
    (tmp_path / "plugin_task.py").write_text(
        "from enas_lightning.errors import ConfigError\n"
        "from enas_lightning.tasks import Task, register_task\n"
        "def check(cfg, run_dir, overrides):\n"
        "    if cfg.seed == 13:\n"
        "        raise ConfigError('seed', cfg.seed, 'anything but 13 for task=echo')\n"
        "def run(cfg, out):\n"
        "    (out / 'echo.txt').write_text(str(cfg.seed))\n"
        "    return 0.5\n"
        "register_task(Task('echo', run=run, check=check, resumes=False))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint("echo", "plugin_task", tasks.ENTRY_POINT_GROUP)
    monkeypatch.setattr(tasks, "entry_points", lambda group: [ep] if group == ep.group else [])
    monkeypatch.setattr(TASKS, "_tasks", dict(TASKS._tasks))  # as in a new process
    monkeypatch.setattr(TASKS, "_loaded", False)
    assert list(TASKS)[-1] == "echo"

    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="seed=13 is not allowed: anything but 13"):
        precheck.check(compose_cfg(out, ["task=echo", "seed=13"]), out)
    assert not out.exists()
    cfg = compose_cfg(out, ["task=echo", "seed=3"])
    precheck.check(cfg, out)
    assert run(cfg) == 0.5
    assert (out / "echo.txt").read_text() == "3"
    with pytest.raises(ConfigError, match="pass another hydra.run.dir"):
        rundir.check_new_dir({"task": "echo", "resume": True}, out, "hydra.run.dir")


def imports(module: Path) -> set[str]:
    """The ``enas_lightning`` modules ``module`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("enas_lightning")}


def test_app_and_rundir_do_not_import_each_other() -> None:
    assert "enas_lightning.app" not in imports(PACKAGE / "rundir.py")
    # the app decides nothing per task: no module of a task is named in it or in the precheck
    task_modules = {f"enas_lightning.tasks.{name}" for name in tasks.BUILTIN}
    for module in ("app.py", "precheck.py"):
        assert not imports(PACKAGE / module) & task_modules, module
