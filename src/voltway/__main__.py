from voltway.cli import app

app(prog_name="voltway")
