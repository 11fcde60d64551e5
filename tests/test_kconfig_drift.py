# SPDX-License-Identifier: GPL-2.0
"""Config fragments against kernels whose options differ: an option asked off that a tree
lacks is off already; one asked on that it lacks is an error unless optional; a renamed
option (data/kconfig-renames.toml) takes the tree's name. Each rule with the case a lax
rule would wave through."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_tree import fake_tree, fragment

from harness.data import KERNEL_CONFIG
from harness.errors import UserError
from harness.stages.kconfig import ConfigRequest, configure
from harness.stages.kconfig_drift import RENAMES_FILE, Rename, Resolution, load_renames, resolve
from harness.stages.kconfig_variants import variant_names

SERIES = "CONFIG_FUTEX=y\nCONFIG_RSEQ=y\nCONFIG_FUTEX_ROBUST_UNLOCK=y\n"
# RSEQ under a name the fake tree does not have.
RSEQ_RENAMED = Rename(("RESTARTABLE_SEQUENCES", "RSEQ"), "a rename for the test")


def renames_file(tmp_path: Path, *entries: Rename) -> Path:
    path = tmp_path / "renames.toml"
    path.write_text("".join(f"[[option]]\nnames = {list(r.names)!r}\nwhy = {r.why!r}\n"
                            for r in entries).replace("'", '"'))
    return path


def request(tmp_path: Path, *frags: Path, renames: Path | None = None,
            optional: tuple[str, ...] = (), defconfig: str = "x86_64_defconfig",
            ) -> ConfigRequest:
    tree = tmp_path / "linux"
    if not tree.exists():
        fake_tree(tmp_path)
    return ConfigRequest(tree, tmp_path / "build", frags, defconfig, "x86_64",
                         tmp_path / "logs", 60, 60, optional,
                         renames=renames or renames_file(tmp_path))


def with_rseq_defconfig(tmp_path: Path) -> str:
    """A defconfig of the fake tree that turns RSEQ on, so that only turning it off counts."""
    tree = tmp_path / "linux"
    if not tree.exists():
        fake_tree(tmp_path)
    with (tree / "Makefile").open("a") as f:
        f.write("\nrseq_defconfig:\n\tmkdir -p $(O)\n\tprintf 'CONFIG_FUTEX=y\\nCONFIG_RSEQ=y"
                "\\nCONFIG_GENERIC_IRQ_ENTRY=y\\n' > $(O)/.config\n")
    return "rseq_defconfig"


# The rules, on their own.

def test_an_option_asked_on_that_the_tree_lacks_is_missing() -> None:
    resolution, missing = resolve({"A": "y", "B": "m", "C": '"x"'}, {"D"})
    assert missing == ("A", "B", "C")
    assert resolution == Resolution()


def test_an_option_asked_off_that_the_tree_lacks_is_off_already() -> None:
    resolution, missing = resolve({"A": "n", "B": "y"}, {"B"})
    assert missing == () and resolution.gone == ("A",)
    assert resolution.apply({"A": "n", "B": "y"}) == {"B": "y"}


def test_an_optional_option_the_tree_lacks_is_absent_whatever_its_value() -> None:
    resolution, missing = resolve({"SERIES": "y", "B": "y"}, {"B"}, optional=("SERIES",))
    assert missing == () and resolution.absent == ("SERIES",) and resolution.gone == ()


def test_a_renamed_option_takes_the_name_the_tree_has() -> None:
    renames = (Rename(("NEW", "OLD"), "why"),)
    old_tree, _ = resolve({"NEW": "n"}, {"OLD"}, renames=renames)
    assert old_tree.renamed == (("NEW", "OLD"),)
    assert old_tree.apply({"NEW": "n"}) == {"OLD": "n"}
    new_tree, _ = resolve({"OLD": "y"}, {"NEW"}, renames=renames)
    assert new_tree.renamed == (("OLD", "NEW"),)
    both, _ = resolve({"NEW": "y"}, {"NEW", "OLD"}, renames=renames)
    assert both.renamed == ()


def test_a_renamed_option_asked_on_that_the_tree_has_under_no_name_is_missing() -> None:
    renames = (Rename(("NEW", "OLD"), "why"),)
    assert resolve({"NEW": "y"}, {"OTHER"}, renames=renames)[1] == ("NEW",)
    assert resolve({"NEW": "n"}, {"OTHER"}, renames=renames)[0].gone == ("NEW",)


def test_the_first_name_the_tree_has_wins() -> None:
    renames = (Rename(("C", "B", "A"), "why"),)
    assert resolve({"C": "y"}, {"A", "B"}, renames=renames)[0].renamed == (("C", "B"),)


def test_two_names_of_one_option_asked_different_values_conflict() -> None:
    renames = (Rename(("NEW", "OLD"), "why"),)
    with pytest.raises(UserError, match=r"CONFIG_NEW=y and CONFIG_OLD=n.*one option in this "
                                        r"tree: CONFIG_NEW"):
        resolve({"NEW": "y", "OLD": "n"}, {"NEW"}, renames=renames)
    assert resolve({"NEW": "y", "OLD": "y"}, {"NEW"}, renames=renames)[1] == ()


# The renames file.

def test_the_shipped_renames_load_with_a_reason_each() -> None:
    renames = load_renames(RENAMES_FILE)
    assert all(len(r.names) >= 2 and r.why for r in renames)


@pytest.mark.parametrize(("text", "error"), [
    ('[[option]]\nnames = ["A"]\nwhy = "w"\n', "two or more names and a why"),
    ('[[option]]\nnames = ["A", "B"]\n', "two or more names and a why"),
    ('[[option]]\nnames = ["A", "B"]\nwhy = "w"\n[[option]]\nnames = ["C", "B"]\nwhy = "w"\n',
     "B in two entries"),
])
def test_a_bad_renames_file_is_named(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "renames.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=error):
        load_renames(path)


# The rules in the config stage, on the fake tree.

def test_configure_passes_over_an_option_asked_off_that_the_tree_lacks(tmp_path: Path) -> None:
    frag = fragment(tmp_path, "s.config", SERIES + "# CONFIG_SERIAL_8250_MOXA_PCIE is not set\n")
    done = configure(request(tmp_path, frag))
    assert done.gone == ("SERIAL_8250_MOXA_PCIE",)
    assert "SERIAL_8250_MOXA_PCIE" not in done.requested
    assert done.final["FUTEX_ROBUST_UNLOCK"] == "y"


def test_configure_refuses_an_option_asked_on_that_the_tree_lacks(tmp_path: Path) -> None:
    frag = fragment(tmp_path, "s.config", SERIES + "CONFIG_SERIAL_8250_MOXA_PCIE=y\n")
    with pytest.raises(UserError) as err:
        configure(request(tmp_path, frag))
    assert "options this tree does not have: CONFIG_SERIAL_8250_MOXA_PCIE=y" in str(err.value)
    assert str(frag) in str(err.value), "the message names the fragment that asks"


def test_configure_drops_an_optional_option_the_tree_lacks(tmp_path: Path) -> None:
    frag = fragment(tmp_path, "s.config", SERIES + "CONFIG_NEW_SERIES=y\n")
    with pytest.raises(UserError, match="CONFIG_NEW_SERIES=y"):
        configure(request(tmp_path, frag))
    done = configure(request(tmp_path, frag, optional=("NEW_SERIES",)))
    assert done.absent == ("NEW_SERIES",) and "NEW_SERIES" not in done.requested


def test_configure_asks_for_a_renamed_option_under_the_trees_name(tmp_path: Path) -> None:
    """RSEQ named RESTARTABLE_SEQUENCES: without the rename it is an error; with it, RSEQ is
    set (FUTEX_ROBUST_UNLOCK depends on it, so it sticks only if the rename reached Kconfig)."""
    frag = fragment(tmp_path, "s.config", "CONFIG_FUTEX=y\nCONFIG_RESTARTABLE_SEQUENCES=y\n"
                                          "CONFIG_FUTEX_ROBUST_UNLOCK=y\n")
    with pytest.raises(UserError, match="CONFIG_RESTARTABLE_SEQUENCES=y"):
        configure(request(tmp_path, frag))
    done = configure(request(tmp_path, frag, renames=renames_file(tmp_path, RSEQ_RENAMED)))
    assert done.renamed == (("RESTARTABLE_SEQUENCES", "RSEQ"),)
    assert done.requested["RSEQ"] == "y" and "RESTARTABLE_SEQUENCES" not in done.requested
    assert done.final["RSEQ"] == "y" and done.final["FUTEX_ROBUST_UNLOCK"] == "y"
    assert (tmp_path / "logs" / "renamed.config").read_text() == "CONFIG_RSEQ=y\n"


def test_a_renamed_option_asked_off_is_turned_off_under_the_trees_name(tmp_path: Path) -> None:
    """The defconfig turns RSEQ on and a fragment asks it off under its other name. A lax
    rule that drops the line as 'not in the tree, so off already' would leave it on."""
    defconfig = with_rseq_defconfig(tmp_path)
    frag = fragment(tmp_path, "s.config", "CONFIG_FUTEX=y\nCONFIG_RSEQ=y\n")
    off = fragment(tmp_path, "t.config", "# CONFIG_RESTARTABLE_SEQUENCES is not set\n")
    renames = renames_file(tmp_path, RSEQ_RENAMED)
    with pytest.raises(UserError, match="CONFIG_RESTARTABLE_SEQUENCES=n and CONFIG_RSEQ=y"):
        configure(request(tmp_path, frag, off, renames=renames, defconfig=defconfig))
    frag.write_text("CONFIG_FUTEX=y\n")
    done = configure(request(tmp_path, frag, off, renames=renames, defconfig=defconfig))
    assert done.renamed == (("RESTARTABLE_SEQUENCES", "RSEQ"),) and done.gone == ()
    assert done.final["RSEQ"] == "n" and done.final["FUTEX_ROBUST_UNLOCK"] == "n"
    # The fooled case: without the rename the line is dropped, and RSEQ stays on.
    lax = configure(request(tmp_path, frag, off, defconfig=defconfig,
                            renames=renames_file(tmp_path)))
    assert lax.gone == ("RESTARTABLE_SEQUENCES",) and lax.final["RSEQ"] == "y"


def test_a_kept_config_keeps_the_fit(tmp_path: Path) -> None:
    """The second config is skipped; it must still check the tree's names, not the fragment's."""
    frag = fragment(tmp_path, "s.config", "CONFIG_FUTEX=y\nCONFIG_RESTARTABLE_SEQUENCES=y\n"
                                          "# CONFIG_GONE is not set\n")
    req = request(tmp_path, frag, renames=renames_file(tmp_path, RSEQ_RENAMED))
    first = configure(req)
    again = configure(req)
    assert again.skipped
    assert (again.requested, again.renamed, again.gone) == \
        (first.requested, first.renamed, first.gone) == \
        ({"FUTEX": "y", "RSEQ": "y"}, (("RESTARTABLE_SEQUENCES", "RSEQ"),), ("GONE",))


def test_a_changed_renames_file_runs_the_config_again(tmp_path: Path) -> None:
    frag = fragment(tmp_path, "s.config", SERIES)
    req = request(tmp_path, frag)
    configure(req)
    assert configure(req).skipped
    req.renames.write_text('[[option]]\nnames = ["A", "B"]\nwhy = "w"\n')
    assert not configure(req).skipped


def test_variant_names_are_every_subdirectory_and_vng() -> None:
    names = variant_names(KERNEL_CONFIG)
    assert names[0] == "vng"
    assert set(names[1:]) == {d.name for d in KERNEL_CONFIG.iterdir() if d.is_dir()}
    assert {"minimal", "lean", "nocompat"} <= set(names)
