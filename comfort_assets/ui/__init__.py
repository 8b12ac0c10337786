"""The forecast page: a Streamlit app on the Bento service over HTTP (extra ``[ui]``)."""
