"""Help that is enough: whole summaries, an example, the exit codes, the environment,
help for every option, and --platform as docker takes it."""

from __future__ import annotations

import click
import pytest

from airgap.cli.commands import cli
from tests.terminal import at_terminal, in_pipe


def test_the_top_help_has_whole_summaries_an_example_exit_codes_and_the_environment() -> None:
    result = in_pipe("--help")
    assert result.returncode == 0
    text = result.stdout
    for command in cli.list_commands(click.Context(cli)):
        summary = cli.commands[command].get_short_help_str(limit=200)
        assert summary in text.replace("\n ", " ") or summary in text, (command, summary)
        assert "..." not in summary, command
    assert "airgap fetch site.yaml -o bundle/" in text
    assert "airgap verify bundle/ --trust-key" in text and "airgap load bundle/" in text
    assert "3 verification failed" in text and "143 terminated" in text
    for variable in ("AIRGAP_REGISTRY_USERNAME", "DOCKER_HOST", "AIRGAP_SIGN_PASSPHRASE",
                     "AIRGAP_DEBUG", "HTTPS_PROXY"):
        assert variable in text
    assert "_AIRGAP_COMPLETE=bash_source airgap" in text


def _options() -> list[tuple[str, click.Option]]:
    found = []
    for name, command in cli.commands.items():
        for parameter in command.params:
            if isinstance(parameter, click.Option) and parameter.name != "help":
                found.append((name, parameter))
    return found


@pytest.mark.parametrize(("command", "option"), _options(),
                         ids=[f"{c}-{o.opts[0]}" for c, o in _options()])
def test_every_option_has_help_and_a_repeatable_one_says_so(command: str,
                                                           option: click.Option) -> None:
    assert option.help, f"{command} {option.opts[0]} has no help"
    if option.multiple:
        assert "repeatable" in option.help, f"{command} {option.opts[0]}"


@pytest.mark.parametrize("given", ["arm64", "linux/arm64/v8", "aarch64", "linux/arm64"])
def test_platform_is_taken_as_docker_takes_it(given: str, golden_bundle: object,
                                              operator_key: object, tmp_path: object) -> None:
    result = in_pipe("export-image", str(golden_bundle), "--platform", given, "-o",
                     f"{tmp_path}/image.tar", "--trust-key", str(operator_key))
    assert result.returncode == 0, result.stderr
    assert "(linux/arm64" in result.stdout


def test_a_non_empty_folder_for_a_bundle_is_a_usage_error(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "documents"
    folder.mkdir()
    (folder / "thesis.odt").write_text("years of work")
    result = in_pipe("fetch", "manifests/minimal.yaml", "-o", str(folder))
    assert result.returncode == 2
    assert "is not empty and is not an airgap bundle" in result.stderr
    assert "give -o a new or empty folder" in result.stderr
    assert (folder / "thesis.odt").read_text() == "years of work"


@pytest.mark.parametrize("command", sorted(
    name for name, command in cli.commands.items()
    if any(p.name == "trust_keys" for p in command.params)))
def test_trust_key_help_names_everything_the_operator_vouches_for(command: str) -> None:
    result = in_pipe(command, "--help", env={"COLUMNS": "2000"})
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    said = text[text.index("--trust-key"):text.index("--trust-key") + 400]
    for area in ("keys/", "the image", "security/", "tools/", "bundle.json"):
        assert area in said, (command, said)


@pytest.mark.parametrize("command", [[], *([name] for name in cli.commands)],
                         ids=["airgap", *cli.commands])
def test_every_help_fits_80_columns(command: list[str]) -> None:
    result = in_pipe(*command, "--help")  # a pipe: click takes 80 columns, as a terminal's
    assert result.returncode == 0, result.stderr
    wide = [line for line in result.stdout.splitlines() if len(line) > 80]
    assert wide == [], wide


@pytest.mark.parametrize("command", [[], ["load"], ["fetch"]], ids=["airgap", "load", "fetch"])
def test_help_at_an_80_column_terminal_is_never_wrapped(command: list[str]) -> None:
    seen = at_terminal(*command, "--help", env={"COLUMNS": "80"})
    seen.assert_no_traceback()
    assert seen.code == 0
    wide = [line for line in seen.lines if len(line) > 80]
    assert wide == [], wide
    assert "Usage: airgap" in seen.text
