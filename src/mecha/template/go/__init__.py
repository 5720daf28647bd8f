"""Go's text/template, enough of it for prompts written for the Go program: lex, parse, run, fmt."""
