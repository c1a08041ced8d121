# Builds pgpreflight's packages as scripts/package.sh does, then installs the .deb in a slim image:
#   docker build -t pgpreflight .
#   docker run --rm pgpreflight validate --source "$SOURCE" --target "$TARGET"
#   docker run --rm -v "$PWD/dist:/out" --entrypoint cp pgpreflight -r /dist/. /out   (the packages)
FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pkg-config libpq-dev libxml2-dev git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/package.sh

FROM debian:bookworm-slim
COPY --from=build /src/dist/ /dist/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /dist/pgpreflight_*_amd64.deb \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /work
ENTRYPOINT ["pgpreflight"]
CMD ["--help"]
