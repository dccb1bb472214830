#!/usr/bin/env bash
echo "report: all systems nominal at $(date -u +%FT%TZ)"
