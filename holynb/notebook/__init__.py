"""holynb's notebook faces: the ``%%holy`` magic and the ``ChatPanel`` widget.

Users reach them through the package root (``%load_ext holynb``, ``holynb.ChatPanel``,
``holynb.HolyMagics``); this folder is the only part of holynb that imports IPython or
ipywidgets.

    magic.py          %%holy / %holy: the magic and its streaming loop
    magic_args.py     its flags, and resolving one request from flags, config and environment
    commands.py       %holy models | config | history | stats | error | mock
    output.py         where the magic's output goes (budgeted display messages, or a terminal)
    live_markdown.py  streamed Markdown → finished blocks → budgeted output slots
    safe_markdown.py  the one sanitiser and code-fence finder for model-written Markdown
    reply_parts.py    the Thinking block and tool-call blocks both faces show
    prompt.py         {variable} interpolation in prompts
    panel.py          ChatPanel
    panel_live.py     its transcript entries and the live view of a streaming reply
    panel_assets.py   its CSS and JavaScript
    messages.py       what both faces say when something fails
"""
