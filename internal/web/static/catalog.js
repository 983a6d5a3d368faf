// Catalog forms: add data item rows without a round trip.
(function () {
  "use strict";
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-add-row]");
    if (!btn) return;
    var body = document.querySelector("#" + btn.getAttribute("data-add-row") + " tbody");
    if (!body || !body.lastElementChild) return;
    var last = body.lastElementChild;
    var row = last.cloneNode(true);
    var n = body.children.length;
    row.querySelectorAll("input, select").forEach(function (el) {
      el.name = el.name.replace(/^items\.\d+\./, "items." + n + ".");
      if (el.type === "checkbox") el.checked = false;
      else if (el.tagName === "SELECT") el.selectedIndex = 0;
      else el.value = "";
    });
    row.querySelectorAll(".invalid").forEach(function (el) { el.classList.remove("invalid"); });
    var num = row.querySelector("td.num");
    if (num) num.textContent = n;
    body.appendChild(row);
    var first = row.querySelector("input");
    if (first) first.focus();
  });
})();
