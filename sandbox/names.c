/* names: see names.h. */
#include "names.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const FIRST[] = {
  "James",   "Mary",      "Robert",  "Patricia",  "John",        "Jennifer", "Michael", "Linda",
  "David",   "Elizabeth", "William", "Barbara",   "Richard",     "Susan",    "Joseph",  "Jessica",
  "Thomas",  "Sarah",     "Charles", "Karen",     "Christopher", "Lisa",     "Daniel",  "Nancy",
  "Matthew", "Betty",     "Anthony", "Margaret",  "Mark",        "Sandra",   "Donald",  "Ashley",
  "Steven",  "Kimberly",  "Paul",    "Emily",     "Andrew",      "Donna",    "Joshua",  "Michelle",
  "Kenneth", "Carol",     "Kevin",   "Amanda",    "Brian",       "Dorothy",  "George",  "Melissa",
  "Timothy", "Deborah",   "Ronald",  "Stephanie", "Jason",       "Rebecca",  "Edward",  "Sharon",
  "Jeffrey", "Laura",     "Ryan",    "Cynthia",   "Jacob",       "Kathleen", "Gary",    "Amy",
  "Luis",    "Ana",       "Carlos",  "Maria",     "Wei",         "Mei",      "Arjun",   "Priya",
};

static const char *const LAST[] = {
  "Smith",     "Johnson",  "Williams",  "Brown",   "Jones",    "Garcia",   "Miller",   "Davis",
  "Rodriguez", "Martinez", "Hernandez", "Lopez",   "Gonzalez", "Wilson",   "Anderson", "Thomas",
  "Taylor",    "Moore",    "Jackson",   "Martin",  "Lee",      "Perez",    "Thompson", "White",
  "Harris",    "Sanchez",  "Clark",     "Ramirez", "Lewis",    "Robinson", "Walker",   "Young",
  "Allen",     "King",     "Wright",    "Scott",   "Torres",   "Nguyen",   "Hill",     "Flores",
  "Green",     "Adams",    "Nelson",    "Baker",   "Hall",     "Rivera",   "Campbell", "Mitchell",
  "Carter",    "Roberts",  "Chen",      "Patel",   "Kim",      "O'Brien",  "Okafor",   "Novak",
};

static const struct company COMPANIES[] = {
  {"Acme Logistics Demo", "100 Harbor Blvd", "Oakland", "CA", "94607", "acmelogistics.example",
   "5105550100", "94-1000001"},
  {"Bluebird Health Demo", "2200 Medical Pkwy", "Austin", "TX", "78701", "bluebirdhealth.example",
   "5125550101", "74-1000002"},
  {"Cedar County Schools Demo", "15 School St", "Columbus", "OH", "43215", "cedarschools.example",
   "6145550102", "31-1000003"},
  {"Driftwood Retail Demo", "800 Market St", "Seattle", "WA", "98101", "driftwoodretail.example",
   "2065550103", "91-1000004"},
  {"Evergreen Manufacturing Demo", "4 Industrial Way", "Grand Rapids", "MI", "49503",
   "evergreenmfg.example", "6165550104", "38-1000005"},
  {"Foxglove Foods Demo", "77 Orchard Rd", "Fresno", "CA", "93721", "foxglovefoods.example",
   "5595550105", "94-1000006"},
  {"Granite Bank Demo", "1 Financial Plz", "Charlotte", "NC", "28202", "granitebank.example",
   "7045550106", "56-1000007"},
  {"Harborview Hospital Demo", "325 9th Ave", "Seattle", "WA", "98104", "harborview.example",
   "2065550107", "91-1000008"},
  {"Ironwood Construction Demo", "9 Quarry Ln", "Denver", "CO", "80202", "ironwoodbuild.example",
   "3035550108", "84-1000009"},
  {"Juniper Software Demo", "500 Tech Dr", "San Jose", "CA", "95110", "junipersoft.example",
   "4085550109", "77-1000010"},
  {"Keystone Transit Demo", "60 Depot Sq", "Philadelphia", "PA", "19107", "keystonetransit.example",
   "2155550110", "23-1000011"},
  {"Lakeside Hotels Demo", "12 Shore Dr", "Chicago", "IL", "60611", "lakesidehotels.example",
   "3125550111", "36-1000012"},
  {"Maplewood Insurance Demo", "450 Elm St", "Hartford", "CT", "06103", "maplewoodins.example",
   "8605550112", "06-1000013"},
  {"Northstar Energy Demo", "700 Prairie Ave", "Minneapolis", "MN", "55401",
   "northstarenergy.example", "6125550113", "41-1000014"},
  {"Oakridge Pharmacy Demo", "31 Main St", "Nashville", "TN", "37201", "oakridgerx.example",
   "6155550114", "62-1000015"},
  {"Pinecrest Staffing Demo", "88 Commerce St", "Atlanta", "GA", "30303", "pinecreststaff.example",
   "4045550115", "58-1000016"},
  {"Quarry Point Mining Demo", "2 Ridge Rd", "Reno", "NV", "89501", "quarrypoint.example",
   "7755550116", "88-1000017"},
  {"Riverbend Credit Union Demo", "140 River St", "Sacramento", "CA", "95814",
   "riverbendcu.example", "9165550117", "94-1000018"},
  {"Summit Outdoor Demo", "5 Trailhead Ct", "Boulder", "CO", "80302", "summitoutdoor.example",
   "3035550118", "84-1000019"},
  {"Tidewater Shipping Demo", "1200 Port Ave", "Norfolk", "VA", "23510", "tidewatership.example",
   "7575550119", "54-1000020"},
  {"Union Street Diner Demo", "42 Union St", "Boston", "MA", "02108", "unionstreetdiner.example",
   "6175550120", "04-1000021"},
  {"Valley Farms Demo", "300 County Rd 5", "Des Moines", "IA", "50309", "valleyfarms.example",
   "5155550121", "42-1000022"},
  {"Westgate Telecom Demo", "2500 Signal Way", "Phoenix", "AZ", "85004", "westgatetel.example",
   "6025550122", "86-1000023"},
  {"Yellowfin Airlines Demo", "1 Terminal Rd", "Miami", "FL", "33101", "yellowfinair.example",
   "3055550123", "59-1000024"},
};

static const char *const TITLES[] = {
  "Warehouse Associate",
  "Registered Nurse",
  "Teacher",
  "Store Manager",
  "Machine Operator",
  "Line Cook",
  "Bank Teller",
  "Medical Assistant",
  "Electrician",
  "Software Engineer",
  "Bus Operator",
  "Front Desk Agent",
  "Claims Adjuster",
  "Field Technician",
  "Pharmacy Technician",
  "Recruiter",
  "Heavy Equipment Operator",
  "Loan Officer",
  "Sales Associate",
  "Dock Supervisor",
  "Server",
  "Farm Hand",
  "Customer Support Specialist",
  "Flight Attendant",
};

static const char *const MANAGERS[] = {
  "Jenny McDouglas", "Omar Haddad", "Rita Alvarez", "Sam Whitfield", "Grace Liu", "Tom Becker",
};

static const char *const STREETS[] = {
  "1 Morgan Ave", "22 Pine St",        "305 Oak Ln",     "48 Birch Rd", "9 Willow Ct",
  "711 Lake Dr",  "16 Hillcrest Blvd", "230 Sunset Ave", "57 River Rd", "404 Maple St",
};

const char *names_first(uint64_t v) {
  return FIRST[v % COUNT(FIRST)];
}
const char *names_last(uint64_t v) {
  return LAST[v % COUNT(LAST)];
}
const struct company *names_company(uint64_t v) {
  return &COMPANIES[v % COUNT(COMPANIES)];
}
const char *names_job_title(uint64_t v) {
  return TITLES[v % COUNT(TITLES)];
}
const char *names_manager(uint64_t v) {
  return MANAGERS[v % COUNT(MANAGERS)];
}
const char *names_street(uint64_t v) {
  return STREETS[v % COUNT(STREETS)];
}
