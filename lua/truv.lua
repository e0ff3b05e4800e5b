return { _VERSION = require("truv.core")._VERSION }
