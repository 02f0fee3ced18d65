"""ViTRM Lab: watch a tiny recursive model think, step by step.

    streamlit run app/main.py          (or: make app)

Runs offline with no arguments on the checkpoints under ``checkpoints/``. Environment:

    VITRM_CHECKPOINTS        the checkpoints directory listed in the sidebar (default: ./checkpoints)
    VITRM_CHECKPOINT_ROOTS   more directories, separated by ':', under which a typed path may point

This file is the server: ``streamlit run`` finds the ``App`` below and serves app/script.py, the script each
visitor's page runs, through it. A plain script could only start work when the first visitor arrives; the App's
start-up hook begins the app's imports (PyTorch: about 2 s on the 2-core machine) as soon as the server listens,
while the first browser is still loading the page (app/startup.py).
"""

from pathlib import Path

from streamlit.starlette import App

from app.startup import preloading

app = App(Path(__file__).with_name("script.py"), lifespan=preloading)
