"""Entry point: one server for the pages, the webhook route and the send worker.

`streamlit run streamlit_app.py` serves it; `uvicorn streamlit_app:app` runs the same object.
"""

import logging
import tomllib
from pathlib import Path

import streamlit as st
from streamlit import config as st_config
from streamlit.errors import FragmentHandledException
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core.server import lifespan_for, routes
from dashboard.auth import log_out, password_login, render_login, signed_in, write_session_cookie
from dashboard.layout import PAGE_FAILED, ROUTED, wanted_page

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
# Under uvicorn, set STREAMLIT_SERVER_PORT to the port uvicorn listens on.
_local_url = f"http://127.0.0.1:{st_config.get_option('server.port')}"
app = st.App(__file__, routes=routes(), lifespan=lifespan_for(_local_url))

if get_script_run_ctx(suppress_warning=True) is not None:  # a browser session, not the server importing `app`
    st.set_page_config(page_title="Blast Tracker", page_icon=":material/campaign:", layout="wide")
    if signed_in():
        pages = [
            st.Page("pages/overview.py", title="Overview", icon=":material/filter_alt:", default=True),
            st.Page("pages/replies.py", title="Replies", icon=":material/forum:"),
            st.Page("pages/new_blast.py", title="New blast", icon=":material/add_circle:"),
            st.Page("pages/blast.py", title="Blast detail", icon=":material/campaign:"),
            st.Page("pages/opt_outs.py", title="Opt-outs", icon=":material/block:"),
            st.Page("pages/health.py", title="Settings & health", icon=":material/monitor_heart:"),
        ]
    else:
        pages = [st.Page(render_login, title="Log in", icon=":material/lock:")]
    st.session_state[ROUTED] = True  # pages check it: see dashboard.layout.require_the_router
    navigation = st.navigation(pages)
    if signed_in() and (wanted := wanted_page(pages)):
        st.switch_page(wanted[0], query_params=wanted[1])
    if signed_in() and password_login():
        st.sidebar.button("Log out", icon=":material/logout:", on_click=log_out, key="log_out")
    write_session_cookie()
    try:
        navigation.run()
    except FragmentHandledException:
        raise  # a part of the page failed and said so itself (`dashboard.layout.in_words`)
    except Exception:  # Streamlit's own rerun and stop are not Exceptions: they pass
        log.exception("the page %s failed", navigation.title)
        st.error(PAGE_FAILED, icon=":material/error:")
