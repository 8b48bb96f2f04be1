"""A fake plugin for an older specmatch; specmatch refuses it before importing anything from here."""
