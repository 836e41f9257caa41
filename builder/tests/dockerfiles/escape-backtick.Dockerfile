# escape=`
# syntax=docker/dockerfile:1

FROM mcr.microsoft.com/windows/servercore:ltsc2022
WORKDIR C:\app
COPY app.ps1 C:\app\
ENV DIR=C:\data `
    LOG=C:\logs
RUN powershell -Command `
    Write-Host "C:\app\$env:DIR"
USER `$notexpanded
