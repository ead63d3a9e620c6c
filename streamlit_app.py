"""Entry point: one server for the pages, the webhook route and the send worker.

`streamlit run streamlit_app.py` serves it; `uvicorn streamlit_app:app` runs the same object.
"""

import logging
import tomllib
from collections.abc import Callable
from pathlib import Path

import streamlit as st
from streamlit import config as st_config
from streamlit.errors import FragmentHandledException
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core.server import lifespan_for, log_to_stderr, middleware, routes
from dashboard.auth import log_out, password_login, render_login, signed_in, write_session_cookie
from dashboard.layout import PAGE_FAILED, ROUTED, database_away, say_database_away, wanted_page

log = logging.getLogger("dashboard")


def _this_projects_config() -> None:
    """The options of this project's `.streamlit/config.toml` wherever the server starts.
    `streamlit run` reads it beside the script; `uvicorn streamlit_app:app` started from
    another folder would not, and a failing page would then show its stack trace, and
    uploads be allowed up to 200 MB. An option set on the command line or in another
    config file Streamlit read still wins."""
    path = Path(__file__).parent / ".streamlit" / "config.toml"
    for section, options in tomllib.loads(path.read_text(encoding="utf-8")).items():
        for name, value in options.items():
            if not st_config.is_manually_set(f"{section}.{name}"):
                st_config.set_option(f"{section}.{name}", value, where_defined=str(path))


if get_script_run_ctx(suppress_warning=True) is None:  # once, as the server imports `app`
    _this_projects_config()
    log_to_stderr()
# Under uvicorn, set STREAMLIT_SERVER_PORT to the port uvicorn listens on.
_local_url = f"http://127.0.0.1:{st_config.get_option('server.port')}"
app = st.App(__file__, routes=routes(), middleware=middleware(), lifespan=lifespan_for(_local_url))


def _shown(run: Callable[[], None], title: str) -> None:
    """Run a page, or the login. A failure is said in words, never as a stack trace: the
    database not answering as such, anything else as an unexpected problem, logged in full."""
    try:
        run()
    except FragmentHandledException:
        raise  # a part of the page failed and said so itself (`dashboard.layout.in_words`)
    except Exception as exc:  # Streamlit's own rerun and stop are not Exceptions: they pass
        if database_away(exc):
            say_database_away(exc, title)
            return
        log.exception("the page %s failed", title)
        st.error(PAGE_FAILED, icon=":material/error:")


if get_script_run_ctx(suppress_warning=True) is not None:  # a browser session, not the server importing `app`
    st.set_page_config(page_title="Blast Tracker", page_icon=":material/campaign:", layout="wide")
    allowed = signed_in()
    pages = [
        st.Page("pages/overview.py", title="Overview", icon=":material/filter_alt:", default=allowed),
        st.Page("pages/replies.py", title="Replies", icon=":material/forum:"),
        st.Page("pages/new_blast.py", title="New blast", icon=":material/add_circle:"),
        st.Page("pages/blast.py", title="Blast detail", icon=":material/campaign:"),
        st.Page("pages/opt_outs.py", title="Opt-outs", icon=":material/block:"),
        st.Page("pages/health.py", title="Settings & health", icon=":material/monitor_heart:"),
    ]
    st.session_state[ROUTED] = True  # pages check it: see dashboard.layout.require_the_router
    if not allowed:
        # Every page is known, so a link to one (/blast?blast=3) stays in the address rather than
        # being answered with "Page not found"; none is listed or run. The login's rerun opens it,
        # and from the login's own address ("/"), the Overview.
        login = st.Page(render_login, title="Log in", icon=":material/lock:", default=True)
        st.navigation([login, *pages], position="hidden")
        _shown(render_login, "Log in")
        write_session_cookie()
    else:
        navigation = st.navigation(pages)
        if wanted := wanted_page(pages):
            st.switch_page(wanted[0], query_params=wanted[1])
        if password_login():
            st.sidebar.button("Log out", icon=":material/logout:", on_click=log_out, key="log_out")
        write_session_cookie()
        _shown(navigation.run, navigation.title)
