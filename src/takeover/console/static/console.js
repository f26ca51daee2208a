// Each page refreshes itself every 2 s. When a refresh cannot reach the control plane, say so
// instead of leaving what was last shown on screen as if it were current; the next refresh
// that gets an answer takes the banner away.
document.addEventListener("htmx:sendError", () => {
  const lost = document.getElementById("lost");
  if (lost && lost.hidden) {
    lost.querySelector("time").textContent = new Date().toISOString().slice(11, 19) + " UTC";
    lost.hidden = false;
  }
});
document.addEventListener("htmx:afterRequest", (event) => {
  const lost = document.getElementById("lost");
  if (lost && event.detail.xhr && event.detail.xhr.status > 0) {
    lost.hidden = true;
  }
});
