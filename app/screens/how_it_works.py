"""Page: how ViTRM works, drawn from the loaded model's real configuration."""

from __future__ import annotations

import streamlit as st

from app import cache, session
from app.views import how_it_works
from vitrm import ViTRMConfig

st.header("How ViTRM works")
models = session.models()
if models:
    model = session.focus(models)
    how_it_works.draw_how_it_works(model.config, model.facts["parameters"], model.facts["parameters_by_part"],
                                   model.name)
else:
    st.info("No checkpoint is loaded, so this is the library's default configuration.")
    facts = cache.default_model_facts()
    how_it_works.draw_how_it_works(ViTRMConfig(), facts["parameters"], facts["parameters_by_part"],
                                   "the default ViTRMConfig")
