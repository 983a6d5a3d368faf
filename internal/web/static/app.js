// govshare — the little behaviour the server-rendered pages need.
// The CSP allows only same-origin scripts, so there are no inline handlers:
// everything is wired up here from data attributes and ids.
(function () {
  'use strict';

  var en = /^en\b/i.test(document.documentElement.lang || '');
  var text = en
    ? { confirm: 'Are you sure?', copy: 'Copy', copied: 'Copied', select: 'Selected — press Ctrl+C' }
    : { confirm: '确定执行此操作吗？', copy: '复制', copied: '已复制', select: '已选中，请按 Ctrl+C 复制' };

  // 1. Forms marked data-confirm="1" ask before they submit.
  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (form instanceof HTMLFormElement && form.getAttribute('data-confirm') === '1' && !window.confirm(text.confirm)) {
      ev.preventDefault();
    }
  });

  // 2. A copy button beside secrets that are shown once.
  function selectContents(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function say(button, message) {
    button.textContent = message;
    clearTimeout(button._reset);
    button._reset = setTimeout(function () { button.textContent = text.copy; }, 2500);
  }

  // Intranet deployments often run on plain http, where navigator.clipboard
  // does not exist; then we select the text so the user can copy it.
  function fallback(el, button) {
    selectContents(el);
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    say(button, ok ? text.copied : text.select);
  }

  ['token-value', 'totp-secret'].forEach(function (id) {
    var el = document.getElementById(id);
    if (!el) { return; }
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'btn copy-btn';
    button.textContent = text.copy;
    button.addEventListener('click', function () {
      var value = el.textContent.trim();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(value).then(
          function () { say(button, text.copied); },
          function () { fallback(el, button); }
        );
      } else {
        fallback(el, button);
      }
    });
    el.insertAdjacentElement('afterend', button);
  });

  // 3. Parts of a form that belong to one choice of a select: data-shown-by
  // names the select, data-shown-for the value. Without this script every
  // part shows and the server reads only the chosen one's fields.
  Array.prototype.forEach.call(document.querySelectorAll('[data-shown-by]'), function (part) {
    var select = document.getElementById(part.getAttribute('data-shown-by'));
    if (!select) { return; }
    function show() { part.hidden = select.value !== part.getAttribute('data-shown-for'); }
    select.addEventListener('change', show);
    show();
  });

  // 4. Put the cursor in the first field the server rejected.
  // (td.invalid: the data-item rows of the catalog entry form.)
  var invalid = document.querySelector(
    'label.invalid input:not([type=hidden]), label.invalid select, label.invalid textarea, td.invalid input, td.invalid select');
  if (invalid) { invalid.focus(); }
})();
