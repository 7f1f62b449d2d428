"""The admin page, its JSON API for keys, its login sessions and plugin panels."""
