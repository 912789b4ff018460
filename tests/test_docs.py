"""The reference documents name everything they are the reference for."""

from pathlib import Path

from app import config, create_app

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_environment_variable_is_in_the_configuration_reference():
    text = (DOCS / "configuration.md").read_text()
    missing = [variable for _, variable, _, _ in config.ENVIRONMENT
               if f"`{variable}`" not in text]
    assert missing == []
    assert "`CCM_INSTANCE_PATH`" in text


def test_every_command_is_in_the_command_reference(tmp_path):
    text = (DOCS / "cli.md").read_text()
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'ccm.sqlite3'}"},
                     instance_path=str(tmp_path))
    ours = [name for name, command in app.cli.commands.items()
            if command.callback is None or command.callback.__module__.startswith("app.")]
    missing = [name for name in ours if f"`ccm {name}" not in text]
    assert missing == []


def test_the_project_stands_alone():
    """Nothing in it points at files its users do not have."""
    root = DOCS.parent
    for path in [root / "README.md", *DOCS.glob("*.md"), *root.joinpath("app").rglob("*.py")]:
        assert "../shared" not in path.read_text(), path
