"""Static CSS and JavaScript of the chat panel.

ipywidgets has no key events on a ``Textarea``, so the keyboard shortcut is a small script
delivered as an ``application/javascript`` output inside the panel's ``Output`` widget (widget
outputs are trusted in JupyterLab and Notebook 7). It installs one window-level capture
listener per page, so it sees Ctrl/Shift+Enter before the textarea and JupyterLab do, and it
only acts inside a ``.holynb-input`` of a ``.holynb-panel``.
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
.holynb-banner { padding: 4px 8px; border-radius: 4px; background: #fdecea;
  border-left: 4px solid #d9534f; color: #611a15; }
.holynb-banner.holynb-retrying { background: #fff8e1; border-left-color: #f0ad4e;
  color: #5c4400; }
.holynb-status { font-size: 0.8em; opacity: 0.75; }
</style>"""

# Ctrl/Cmd/Shift+Enter in the input clicks Send; "Code → cell" inserts the last code block of
# the transcript into a new notebook cell when JupyterLab exposes its app object
# (`--LabApp.expose_app_in_browser=True`), and otherwise copies it to the clipboard.
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
      return navigator.clipboard.writeText(text);
    }
    var area = document.createElement('textarea');
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand('copy');
    area.remove();
    return Promise.resolve();
  }
  window.addEventListener('click', function (e) {
    var t = e.target;
    var button = t && t.closest && t.closest('button.holynb-insert');
    if (!button) { return; }
    var panel = button.closest('.holynb-panel');
    var blocks = panel ? panel.querySelectorAll('.holynb-assistant pre code') : [];
    if (!blocks.length) { return; }
    var code = blocks[blocks.length - 1].textContent.replace(/\n$/, '');
    var app = window.jupyterapp;
    if (app && app.commands && app.commands.hasCommand('notebook:insert-cell-below')) {
      app.commands.execute('notebook:insert-cell-below').then(function () {
        var nb = app.shell.currentWidget && app.shell.currentWidget.content;
        if (nb && nb.activeCell) { nb.activeCell.model.sharedModel.setSource(code); }
      });
    } else {
      copyText(code);
    }
  }, true);
})();
"""
