/*
 * holynb's frontend plugin for JupyterLab 4 and Notebook 7, written by hand: no build step.
 *
 * JupyterLab loads a prebuilt ("federated") extension by running this script, which must
 * register a webpack module-federation container as window._JUPYTERLAB[<package name>]
 * with init(shareScope) and get(module) -> Promise<factory>; factory() returns the module,
 * whose default export is the plugin (see jupyterlab/staging/bootstrap.js and index.js). The
 * plugin needs no shared modules (only the `app` object it is activated with), so the
 * container shares nothing and the file is plain JavaScript.
 *
 * What it does: ChatPanel's "Code → cell" button dispatches a cancelable, bubbling
 * `holynb:insert-cell` DOM event with {code}. The plugin finds the notebook and the cell that
 * hold the button, inserts a code cell with that code right below the cell, makes it the
 * active cell and cancels the event, which tells the panel that the insertion happened.
 * Without this plugin nobody cancels the event and the panel copies the code instead.
 */
(function () {
  'use strict';

  function notebookHolding(app, node) {
    var widgets = app.shell.widgets('main');
    for (var widget of widgets) {
      var notebook = widget.content;
      if (notebook && notebook.model && notebook.widgets && widget.node.contains(node)) {
        return notebook;
      }
    }
    return null;
  }

  function insertBelow(app, event) {
    var source = event.target;
    var code = event.detail && event.detail.code;
    if (typeof code !== 'string' || !(source instanceof Node)) {
      return;
    }
    var notebook = notebookHolding(app, source);
    if (!notebook) {
      return;
    }
    var cells = notebook.widgets;
    var index = cells.length;
    for (var i = 0; i < cells.length; i++) {
      if (cells[i].node.contains(source)) {
        index = i + 1;
        break;
      }
    }
    notebook.model.sharedModel.insertCell(index, { cell_type: 'code', source: code });
    notebook.activeCellIndex = index;
    event.detail.index = index;
    event.preventDefault();
  }

  var plugin = {
    id: 'holynb:insert-cell',
    description: 'Lets holynb.ChatPanel insert code into a new notebook cell.',
    autoStart: true,
    activate: function (app) {
      document.addEventListener('holynb:insert-cell', function (event) {
        insertBelow(app, event);
      });
    }
  };

  var scope = (window._JUPYTERLAB = window._JUPYTERLAB || {});
  scope['holynb'] = {
    init: function () {
      return Promise.resolve();
    },
    get: function (module) {
      if (module !== './extension') {
        return Promise.reject(new Error('holynb: no module ' + module));
      }
      return Promise.resolve(function () {
        return { __esModule: true, default: plugin };
      });
    }
  };
})();
