"""Static CSS and JavaScript of the chat panel.

ipywidgets has no key events on a ``Textarea``, so the keyboard shortcut is a small script
delivered as an ``application/javascript`` output inside the panel's ``Output`` widget (widget
outputs are trusted in JupyterLab and Notebook 7). It installs one window-level capture
listener per page, so it sees Ctrl/Shift+Enter before the textarea and JupyterLab do, and it
only acts inside a ``.holynb-input`` of a ``.holynb-panel``.

"Code → cell" asks the page for a real cell insertion with a ``holynb:insert-cell`` DOM event,
which holynb's frontend extension (``labextension/``, installed with the package) handles in
JupyterLab and Notebook 7; where nothing handles it, the code goes to the clipboard. Either
way the script reports what happened through a hidden text widget, and the panel's status
line says exactly that.

Code blocks are highlighted with Pygments classes, coloured by JupyterLab's own editor theme
variables, so the panel's code looks like the magic's (and follows dark themes).
"""

from __future__ import annotations

__all__ = ["PANEL_CSS", "PANEL_JS"]

PANEL_CSS = """<style>
.holynb-panel { max-width: 960px; gap: 4px; }
.holynb-scroll { border: 1px solid var(--jp-border-color2, #ddd); border-radius: 6px; }
/* Inside the scrolling box nothing may shrink: messages keep their full height. */
.holynb-scroll > *, .holynb-log > *, .holynb-msg > *, .holynb-msg .widget-vbox > * {
  flex-shrink: 0; }
.holynb-msg { padding: 2px 10px; margin: 3px 4px; border-radius: 6px; }
.holynb-user { background: var(--jp-layout-color2, #eef1f5); }
.holynb-assistant { background: var(--jp-layout-color0, #fff); }
.holynb-role { font-weight: 600; font-size: 0.85em; opacity: 0.75; }
.holynb-msg .widget-html-content { line-height: 1.45; }
.holynb-msg pre { background: var(--jp-cell-editor-background, #f5f5f5); padding: 6px 8px;
  border-radius: 4px; overflow-x: auto; white-space: pre; }
.holynb-msg table { border-collapse: collapse; }
.holynb-msg th, .holynb-msg td { border: 1px solid var(--jp-border-color2, #ccc);
  padding: 2px 6px; }
.holynb-footer { font-size: 0.8em; opacity: 0.75; }
.holynb-msg details.holynb-thinking { margin: 4px 0; padding: 2px 8px; font-size: 0.92em;
  border-left: 3px solid var(--jp-border-color1, #bbb); opacity: 0.85; }
.holynb-msg details.holynb-thinking summary { cursor: pointer; font-weight: 600; }
.holynb-tool-call { border-left: 3px solid var(--jp-brand-color1, #1976d2); padding-left: 8px;
  margin: 4px 0; }
.holynb-banner { padding: 4px 8px; border-radius: 4px; background: #fdecea; gap: 6px;
  border-left: 4px solid #d9534f; color: #611a15; box-sizing: border-box; }
.holynb-banner .widget-html-content { white-space: normal; overflow-wrap: anywhere;
  line-height: 1.35; }
.holynb-banner button { flex-shrink: 0; overflow: visible; }
.holynb-banner.holynb-retrying { background: #fff8e1; border-left-color: #f0ad4e;
  color: #5c4400; }
.holynb-status { font-size: 0.8em; opacity: 0.75; }
/* Pygments token classes in the colours of JupyterLab's editor theme. */
.holynb-msg pre .k, .holynb-msg pre .kc, .holynb-msg pre .kd, .holynb-msg pre .kn,
.holynb-msg pre .kp, .holynb-msg pre .kr, .holynb-msg pre .ow {
  color: var(--jp-mirror-editor-keyword-color, #008000); font-weight: bold; }
.holynb-msg pre .kt, .holynb-msg pre .nb, .holynb-msg pre .bp {
  color: var(--jp-mirror-editor-builtin-color, #008000); }
.holynb-msg pre .s, .holynb-msg pre .s1, .holynb-msg pre .s2, .holynb-msg pre .sa,
.holynb-msg pre .sb, .holynb-msg pre .sc, .holynb-msg pre .sd, .holynb-msg pre .se,
.holynb-msg pre .sh, .holynb-msg pre .si, .holynb-msg pre .sx, .holynb-msg pre .sr,
.holynb-msg pre .ss, .holynb-msg pre .dl {
  color: var(--jp-mirror-editor-string-color, #ba2121); }
.holynb-msg pre .m, .holynb-msg pre .mb, .holynb-msg pre .mf, .holynb-msg pre .mh,
.holynb-msg pre .mi, .holynb-msg pre .mo, .holynb-msg pre .il {
  color: var(--jp-mirror-editor-number-color, #080); }
.holynb-msg pre .c, .holynb-msg pre .c1, .holynb-msg pre .ch, .holynb-msg pre .cm,
.holynb-msg pre .cs, .holynb-msg pre .cpf {
  color: var(--jp-mirror-editor-comment-color, #408080); font-style: italic; }
.holynb-msg pre .o { color: var(--jp-mirror-editor-operator-color, #aa22ff); font-weight: bold; }
.holynb-msg pre .p { color: var(--jp-mirror-editor-punctuation-color, #05a); }
.holynb-msg pre .nf, .holynb-msg pre .nc, .holynb-msg pre .nn, .holynb-msg pre .fm {
  color: var(--jp-mirror-editor-def-color, #00f); }
.holynb-msg pre .nd, .holynb-msg pre .cp { color: var(--jp-mirror-editor-meta-color, #a2f); }
.holynb-msg pre .nt { color: var(--jp-mirror-editor-tag-color, #170); }
.holynb-msg pre .na, .holynb-msg pre .nv, .holynb-msg pre .vc, .holynb-msg pre .vg,
.holynb-msg pre .vi { color: var(--jp-mirror-editor-attribute-color, #00c); }
.holynb-msg pre .err { color: var(--jp-mirror-editor-error-color, #f00); }
.holynb-msg pre .gd { color: var(--jp-mirror-editor-string-color, #a11); }
.holynb-msg pre .gi { color: var(--jp-mirror-editor-number-color, #080); }
</style>"""

# Ctrl/Cmd/Shift+Enter in the input clicks Send. "Code → cell" asks for a real insertion with
# a cancelable `holynb:insert-cell` event (handled by holynb's frontend extension), copies the
# code when nothing handled it, and reports the outcome to the panel's hidden report widget.
PANEL_JS = r"""
(function () {
  if (window.__holynbPanelJs) { return; }
  window.__holynbPanelJs = true;
  window.addEventListener('keydown', function (e) {
    if (e.key !== 'Enter' || !(e.ctrlKey || e.metaKey || e.shiftKey)) { return; }
    var t = e.target;
    if (!t || !t.closest || !t.closest('.holynb-input')) { return; }
    var panel = t.closest('.holynb-panel');
    var send = panel && panel.querySelector('button.holynb-send');
    if (!send) { return; }
    e.preventDefault();
    e.stopImmediatePropagation();
    if (!send.disabled) { send.click(); }
  }, true);
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(function () { return true; },
                                                      function () { return legacyCopy(text); });
    }
    return Promise.resolve(legacyCopy(text));
  }
  function legacyCopy(text) {
    var area = document.createElement('textarea');
    area.value = text;
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (err) { ok = false; }
    area.remove();
    return ok;
  }
  function report(panel, outcome) {
    var input = panel.querySelector('.holynb-insert-report input');
    if (!input) { return; }
    input.value = outcome + '#' + Date.now();
    input.dispatchEvent(new Event('input', { bubbles: true }));
  }
  window.addEventListener('click', function (e) {
    var t = e.target;
    var button = t && t.closest && t.closest('button.holynb-insert');
    if (!button) { return; }
    var panel = button.closest('.holynb-panel');
    if (!panel) { return; }
    var blocks = panel.querySelectorAll('.holynb-assistant .holynb-answer pre code');
    if (!blocks.length) { report(panel, 'none'); return; }
    var code = blocks[blocks.length - 1].textContent.replace(/\n$/, '');
    var ask = new CustomEvent('holynb:insert-cell',
                              { bubbles: true, cancelable: true, detail: { code: code } });
    if (!button.dispatchEvent(ask)) { report(panel, 'inserted'); return; }
    copyText(code).then(function (ok) { report(panel, ok ? 'copied' : 'failed'); });
  }, true);
})();
"""
