// govshare page behaviour: confirmations, copy buttons, focus on errors.
// Small and dependency-free; the pages work without it.
(function () {
  "use strict";
  var en = document.documentElement.lang === "en";

  // Forms marked data-confirm ask before acting.
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (f.getAttribute && f.getAttribute("data-confirm") && !window.confirm(en ? "Are you sure?" : "确定执行此操作吗？")) {
      ev.preventDefault();
    }
  });

  function addCopy(id) {
    var el = document.getElementById(id);
    if (!el) return;
    var b = document.createElement("button");
    b.type = "button";
    b.className = "btn copy-btn";
    b.textContent = en ? "Copy" : "复制";
    b.addEventListener("click", function () {
      var text = el.textContent.trim();
      var done = function () { b.textContent = en ? "Copied" : "已复制"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { select(el); });
      } else {
        select(el);
        try { if (document.execCommand("copy")) done(); } catch (e) { /* selected for manual copy */ }
      }
    });
    el.insertAdjacentElement("afterend", b);
  }
  function select(el) {
    var r = document.createRange();
    r.selectNodeContents(el);
    var s = window.getSelection();
    s.removeAllRanges();
    s.addRange(r);
  }

  document.addEventListener("DOMContentLoaded", function () {
    addCopy("token-value");
    addCopy("totp-secret");
    var bad = document.querySelector("label.invalid input, label.invalid select, label.invalid textarea, td.invalid input, td.invalid select");
    if (bad) bad.focus();
  });
})();
