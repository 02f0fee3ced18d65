"""ViTRM Lab, the Streamlit app: ``streamlit run app/main.py``."""
