#!/bin/sh
echo "hello from $(cat /app/message), running as $(id -un)"
