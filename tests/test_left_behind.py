"""The SQLite file left in DATA_DIR after moving to another database: its opt-outs are carried
over in one click from Settings & health, and nothing else of it is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from core.config import Settings
from core.db import make_engine, migrate, transaction
from core.left_behind import carry_over_opt_outs, left_behind
from core.models import Blast, OptOut
from core.opt_outs import add_opt_outs
from tests.sending.support import launched_blast
from tests.test_pages import app_db, run_page  # noqa: F401  (app_db: the fixture, used below)

EARLIER = ["+60123456701", "+60123456702", "+60123456703"]


@pytest.fixture
def earlier_dir(tmp_path: Path) -> Path:
    """A data folder whose blasts.db holds two blasts and three opt-outs."""
    folder = tmp_path / "earlier-data"
    engine = make_engine(f"sqlite:///{folder / 'blasts.db'}")
    migrate(engine)
    launched_blast(engine, 3)
    launched_blast(engine, 2)
    with transaction(engine) as s:
        add_opt_outs(s, EARLIER, source="webhook", keyword="STOP")
    engine.dispose()
    return folder


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


def _listed(engine: Engine) -> set[str]:
    with transaction(engine) as s:
        return set(s.scalars(select(OptOut.phone_number)))


def test_the_earlier_files_blasts_and_missing_opt_outs_are_found(engine: Engine, earlier_dir: Path) -> None:
    with transaction(engine) as s:
        add_opt_outs(s, [EARLIER[1]], source="manual")  # already on this list: not missing
        left = left_behind(s, settings=_settings(earlier_dir))
    assert left is not None and left.path == earlier_dir / "blasts.db"
    assert left.blasts == 2 and [o.phone_number for o in left.opt_outs] == [EARLIER[0], EARLIER[2]]


def test_carrying_over_adds_them_and_leaves_only_the_blasts_to_mention(
    engine: Engine, earlier_dir: Path
) -> None:
    with transaction(engine) as s:
        left = left_behind(s, settings=_settings(earlier_dir))
        assert left is not None
        assert carry_over_opt_outs(s, left) == 3
    assert _listed(engine) == set(EARLIER)
    with transaction(engine) as s:
        again = left_behind(s, settings=_settings(earlier_dir))
        assert s.scalar(select(func.count()).select_from(Blast)) == 0, "no blast is copied"
    assert again is not None and again.blasts == 2 and again.opt_outs == []
    earlier = make_engine(f"sqlite:///{earlier_dir / 'blasts.db'}")
    assert _listed(earlier) == set(EARLIER), "the earlier file is only read"
    earlier.dispose()


def test_nothing_is_said_without_an_earlier_file_or_of_the_file_in_use(
    engine: Engine, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with transaction(engine) as s:
        assert left_behind(s, settings=_settings(empty)) is None
        if engine.dialect.name == "sqlite":  # the file in use is not "left behind"
            in_use = Path(engine.url.database).parent
            launched_blast(engine, 1)
            assert left_behind(s, settings=_settings(in_use)) is None


def test_an_earlier_file_that_cannot_be_read_is_said_not_only_logged(
    app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Its opt-outs could be missing here: it had been logged, and the page said nothing."""
    from core.config import get_settings

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "blasts.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    engine = make_engine(app_db)
    with transaction(engine) as s:
        left = left_behind(s, settings=_settings(damaged))
    engine.dispose()
    assert left is not None and left.unreadable and left.opt_outs == []
    monkeypatch.setenv("DATA_DIR", str(damaged))
    get_settings.cache_clear()
    at = run_page("pages/health.py")
    [said] = [w.value for w in at.warning if "used before" in w.value]
    assert "could not be read" in said and "opted out" in said and "Opt-outs page" in said
    assert not any(b.key == "carry_over_opt_outs" for b in at.button)


def test_an_earlier_file_with_nothing_in_it_is_not_mentioned(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    fresh = make_engine(f"sqlite:///{folder / 'blasts.db'}")
    migrate(fresh)
    fresh.dispose()
    with transaction(engine) as s:
        assert left_behind(s, settings=_settings(folder)) is None


def test_settings_page_offers_to_carry_the_opt_outs_over(
    app_db: str, earlier_dir: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from core.config import get_settings

    monkeypatch.setenv("DATA_DIR", str(earlier_dir))
    get_settings.cache_clear()
    at = run_page("pages/health.py")
    [said] = [w.value for w in at.warning if "used before" in w.value]
    assert "2 blasts and 3 opted-out numbers" in said and "may be messaged again" in said
    assert "webhook address of its own" in said, "its secret, kept in the database, is new too"
    [button] = [b for b in at.button if b.key == "carry_over_opt_outs"]
    assert button.label == "Add those 3 opted-out numbers to the opt-out list"
    at = button.click().run()
    assert not at.exception, at.exception
    assert any("3 numbers added to the opt-out list" in m.value for m in at.success)
    assert not any("used before" in w.value for w in at.warning)
    assert any("still holds 2 blasts" in c.value for c in at.caption)
    engine = make_engine(app_db)
    assert _listed(engine) == set(EARLIER)
    engine.dispose()


def test_carried_over_as_they_were_listed_and_a_number_taken_off_is_not_offered_again(
    engine: Engine, earlier_dir: Path
) -> None:
    """A number put on the earlier list by mistake and taken off here must not come back with
    every visit to the page."""
    from core.opt_outs import remove_opt_out

    with transaction(engine) as s:
        left = left_behind(s, settings=_settings(earlier_dir))
        assert left is not None
        carry_over_opt_outs(s, left)
    with transaction(engine) as s:
        rows = s.execute(select(OptOut.source, OptOut.keyword)).all()
        assert set(rows) == {("webhook", "STOP")}, "when and how each was listed there"
        assert remove_opt_out(s, phone=EARLIER[0])
    with transaction(engine) as s:
        again = left_behind(s, settings=_settings(earlier_dir))
    assert again is not None and again.opt_outs == [], "taken off on purpose: not offered again"
