"""What a page costs the browser: the bytes the server sent over its websocket, and what the page built.

``count_websocket_bytes(driver)`` must be called before the page is opened: through the DevTools protocol it
adds a script that runs in every new document before the page's own, wrapping ``WebSocket`` so that every
message received adds its size to ``window.__wsBytes``. Streamlit sends a page's whole content (every element,
every chart's JSON) over that one websocket, so its bytes are the page's weight as delivered; the page's static
files (Streamlit's and Plotly's JavaScript) are the same for every page and counted apart (``static_bytes``).

``weight(driver)`` then reads, in one script call: those bytes, the number of elements in the document and the
length of its HTML, and the JSON size of every Plotly chart the browser holds (its data and layout); when to read
it (the first page drawn) is testkit/chromium.py's ``drawn``. Used by tests/test_browser_hostile.py and
``python -m bench.hostile_inputs --many-classes-browser``.
"""

from __future__ import annotations

COUNT_WEBSOCKET_BYTES = """
(() => {
  const Native = window.WebSocket;
  window.__wsBytes = 0;
  window.__wsMessages = 0;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', e => {
        const d = e.data;
        window.__wsBytes += d.byteLength ?? d.size ?? d.length ?? 0;
        window.__wsMessages += 1;
      });
    }
  };
})();
"""

WEIGHT = """
const charts = [...document.querySelectorAll('.js-plotly-plot')];
return {
  websocket_bytes: window.__wsBytes ?? null,
  websocket_messages: window.__wsMessages ?? null,
  static_bytes: performance.getEntriesByType('resource').reduce((s, r) => s + (r.transferSize || 0), 0),
  elements: document.getElementsByTagName('*').length,
  html_chars: document.documentElement.outerHTML.length,
  chart_json: charts.map(c => JSON.stringify({data: c.data, layout: c.layout}).length),
};
"""


def count_websocket_bytes(driver) -> None:
    """From the next page opened on, count what its websockets receive (Chromium only)."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_WEBSOCKET_BYTES})


def weight(driver) -> dict:
    return driver.execute_script(WEIGHT)

