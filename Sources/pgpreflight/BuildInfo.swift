// scripts/package.sh writes the commit here for a release build (`git describe --always --dirty`)
// and puts this file back afterwards; any other build says "unknown".
let buildCommit = "unknown"
