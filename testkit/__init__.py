"""Helpers shared by the tests, the benchmarks and the docs' scripts (not part of the library or the app).

    fakedata            tiny datasets on disk: CIFAR-10/100 in torchvision's layout, image folders
    oddfiles            hostile and unusual image files, and the memory probes that watch them being read
    streamlit_client    a real ``streamlit run app/main.py`` server, and sessions speaking the browser's protocol
    switching_sessions  the thirty sessions' workload: two tiny models, each session's upload, one session's walk
    chromium            headless Chromium started one way, and the one check that the first page is drawn
    step_recorder       a recorder, inside the page, of every step the browser shows (the scrubber, Play)
    page_weight         what a page costs the browser: the websocket's bytes, its charts' JSON, its elements
"""
