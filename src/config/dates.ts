/**
 * Moved to src/calendar.ts (issue 10). This re-export keeps the imports of src/report/ and of
 * test/unit/config.test.ts and test/integ/report.integ.test.ts working until their owners switch
 * to src/calendar.ts; delete it then.
 */
export { MAX_RANGE_DAYS, addDays, checkDate, dateOfMicros, dateRange } from '../calendar.js';
