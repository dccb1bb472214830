#!/usr/bin/env bash
echo "${GREETING:-Hello} from hello 1.0.0"
