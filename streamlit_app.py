"""The Streamlit face: page setup and navigation; the pages live in rag_app/ui and call the services.

    streamlit run streamlit_app.py        # or `make run`

Settings come from the environment (`RAG_*`); `RAG_PROFILE=test` runs the app on the fake models.
"""

import streamlit as st

from rag_app.ui import state

st.set_page_config(page_title="Local RAG", page_icon=":material/menu_book:", layout="wide")
state.new_run()
state.keep_widget_state()

pages = [
    st.Page("rag_app/ui/chat_page.py", title="Chat", icon=":material/chat:", url_path="chat", default=True),
    st.Page("rag_app/ui/ingest_page.py", title="Ingest", icon=":material/upload_file:", url_path="ingest"),
    st.Page("rag_app/ui/demos_page.py", title="Demos", icon=":material/science:", url_path="demos"),
]
page = st.navigation(pages)

with state.guard("Starting up"):
    rag = state.get_rag()
    state.ensure_corpus(rag)
    state.warm_up(rag)

page.run()
