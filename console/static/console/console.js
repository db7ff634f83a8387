// Operator console: refresh the fragments marked with data-refresh-url every few seconds.
// A fragment is left alone while keyboard focus is inside it, so nobody loses their place;
// when the session has ended (the server answers with the login page) the page reloads.
(function () {
  "use strict";

  function refresh(region) {
    if (document.hidden || region.contains(document.activeElement)) {
      return Promise.resolve();
    }
    region.setAttribute("aria-busy", "true");
    return fetch(region.dataset.refreshUrl, {
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
      cache: "no-store"
    }).then(function (response) {
      if (response.redirected || response.status === 401 || response.status === 403) {
        window.location.reload();
        return;
      }
      if (!response.ok) {
        return;
      }
      return response.text().then(function (html) {
        region.innerHTML = html;
      });
    }).catch(function () {
      // A network hiccup: try again on the next tick.
    }).finally(function () {
      region.removeAttribute("aria-busy");
    });
  }

  function start(region) {
    var seconds = parseFloat(region.dataset.refreshSeconds || "10");
    window.setInterval(function () { refresh(region); }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh-url]").forEach(start);
    var problems = document.getElementById("problems");
    if (problems) {
      problems.focus();
    }
  });
})();
