"""A cell's key follows the files its method reads beyond the config: a rebuilt SFD generator redoes SFD's cells."""

import shutil

from eval.bench import cli
from pipelines.shipped import shipped_one_step_dir
from tests.eval.test_bench_variants import args_for


def sfd_cells(out, *extra):
    args = args_for(out, *extra)
    args.methods = "sfd"
    return cli.plan_cells(args)


def test_a_changed_generator_changes_sfd_keys_and_no_other_methods(tmp_path):
    generator = tmp_path / "generator"
    shutil.copytree(shipped_one_step_dir(), generator)
    config = tmp_path / "sfd.yaml"
    config.write_text(f"generator_init: {generator}\n")
    before = sfd_cells(tmp_path / "bench", "--method-config", f"sfd={config}")
    assert all(set(c.inputs) == {"generator"} for c in before)
    doco_before = [c.key for c in cli.plan_cells(args_for(tmp_path / "bench"))]

    weights = generator / "erasure.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")  # one byte of the generator changed
    after = sfd_cells(tmp_path / "bench", "--method-config", f"sfd={config}")
    assert [c.inputs["generator"] for c in after] != [c.inputs["generator"] for c in before]
    assert all(a.key != b.key for a, b in zip(after, before, strict=True))
    assert [c.key for c in cli.plan_cells(args_for(tmp_path / "bench"))] == doco_before  # doco reads no such file


def test_stage_two_from_the_teacher_reads_no_generator(tmp_path):
    config = tmp_path / "sfd.yaml"
    config.write_text("generator_init: teacher\n")
    assert all(c.inputs == {} for c in sfd_cells(tmp_path / "bench", "--method-config", f"sfd={config}"))
    assert all(set(c.inputs) == {"generator"} for c in sfd_cells(tmp_path / "bench"))  # default: the shipped one
