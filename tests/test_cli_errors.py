"""The command line's one error path: every failure is one line `error: ...`
and a non-zero exit, its traceback shown only with --debug."""

import pytest
from helpers import assert_one_line_error, invoke

from tvm_alexnet import cli

SMALL = ["--width", "0.25", "--num-classes", "10"]


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)


@pytest.fixture
def failing_kernels(monkeypatch):
    """`kernels` raising the exception given to the returned function."""

    def fail_with(error: BaseException):
        def fail(*args):
            raise error

        monkeypatch.setattr(cli.build, "_print_kernels", fail)

    return fail_with


def test_unexpected_error_is_one_line(failing_kernels):
    failing_kernels(RuntimeError("something broke\nand its details"))
    result = invoke("kernels", *SMALL)
    assert result.exit_code == 1
    assert_one_line_error(result, "RuntimeError: something broke", "--debug")
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(failing_kernels, monkeypatch):
    failing_kernels(RuntimeError("something broke"))
    for args in (["--debug", "kernels", *SMALL], ["kernels", *SMALL]):
        if args[0] != "--debug":
            monkeypatch.setenv(cli.DEBUG_ENV, "1")
        result = invoke(*args)
        assert result.exit_code == 1
        assert result.stderr.startswith("Traceback (most recent call last)"), result.stderr
        assert "in fail" in result.stderr  # the frame that raised
        assert result.stderr.strip().splitlines()[-1].startswith("error: RuntimeError: something broke")


def test_os_error_names_the_path(failing_kernels):
    failing_kernels(PermissionError(13, "Permission denied", "/data/out.json"))
    assert_one_line_error(invoke("kernels", *SMALL), "error: /data/out.json: Permission denied")


def test_interrupt_exits_130(failing_kernels):
    failing_kernels(KeyboardInterrupt())
    result = invoke("kernels", *SMALL)
    assert result.exit_code == 130
    assert_one_line_error(result, "interrupted")


def test_usage_error_exits_2():
    result = invoke("kernels", "--no-such-option")
    assert result.exit_code == 2
    assert_one_line_error(result, "--no-such-option")


def test_every_target_option_is_checked_before_the_command_runs():
    commands = [name for name, command in cli.main.commands.items()
                if any(p.name == "target" for p in command.params)]
    assert {"compile", "kernels", "tune", "report", "demo", "run", "eval", "train", "schedules"} <= set(commands)
    for name in commands:
        assert_one_line_error(invoke(name, "--target", '{"kind": "opencl"}'), "'opencl' is not supported")


def test_json_target_with_unknown_cpu_is_refused_before_compiling(tmp_path):
    result = invoke("compile", *SMALL, "--target", '{"kind": "llvm", "mcpu": "bogus"}', "-o", tmp_path / "out")
    assert_one_line_error(result, "unknown CPU model 'bogus'")
    assert not (tmp_path / "out").exists()


def test_json_target_with_a_non_string_cpu_is_one_error_naming_it():
    from tvm_alexnet.target import TargetError, parse_target

    with pytest.raises(TargetError, match="mcpu must be an LLVM CPU name.*got 123"):
        parse_target('{"kind": "llvm", "mcpu": 123}')
