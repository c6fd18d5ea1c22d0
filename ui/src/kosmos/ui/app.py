"""The Kosmos web UI (`kosmos ui`, started by `make run`): Streamlit pages over the SDK."""

from kosmos.ui.shell import main

main()
